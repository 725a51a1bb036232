"""PyTorch as a framework: eager tensors on their device, and its random source (one
``torch.Generator`` per device, or numpy's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import _binding
from ..noise import NumpySource, RandomSource, TorchSource
from ..options import NoiseOptions
from . import Array, HostFunction, ResultSpec


class TorchFramework:
    name = "torch"
    traces = False

    def owns(self, x: Any) -> bool:
        return isinstance(x, torch.Tensor)

    def namespace(self, x: Array) -> Any:
        from array_api_compat import torch as namespace

        return namespace

    def device(self, x: Array) -> Any:
        return x.device

    def is_traced(self, x: Array) -> bool:
        return False

    def on_accelerator(self, x: Array) -> bool:
        return not x.is_cpu  # a third of device.type's cost, on every step

    def batch_size(self, x: Array) -> int:
        return x.shape[0]

    def to_numpy(self, x: Array) -> np.ndarray:
        x = x.detach().cpu()
        # numpy has no bfloat16: widened to float32, which holds every bfloat16 exactly
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()

    def host_call(self, fn: HostFunction, args: Sequence[Array], results: Sequence[ResultSpec]) -> tuple:
        like = args[0]
        values = [self.to_numpy(a) if isinstance(a, torch.Tensor) else a for a in args]
        return tuple(
            torch.as_tensor(np.asarray(r), dtype=dtype, device=like.device)
            for r, (_, dtype) in zip(fn(*values), results)
        )

    def check_rows(self, ok: Array, report: HostFunction, args: Sequence[Array], *words: Any) -> None:
        if ok is None or not bool(torch.all(ok)):  # one read back from the device
            report(*(self.to_numpy(a) for a in args))


FRAMEWORK = TorchFramework()


class NoiseGenerators:
    """Where a layer's noise comes from (:class:`~imle_solvers.options.NoiseOptions`): with a
    seed, one ``torch.Generator`` per device, made on first use (without one, the device's
    default generator: ``torch.manual_seed`` decides); ``"numpy"``: one numpy generator.
    :meth:`state_dict` holds their states: a resumed run draws what an uninterrupted one would."""

    def __init__(self, options: NoiseOptions) -> None:
        self.seed = options.seed
        self.noise_source = options.noise_source
        self.numpy = _binding.generator(self.seed) if self.noise_source == "numpy" else None
        self.torch: dict[str, torch.Generator] = {}
        self._pending: dict[str, torch.Tensor] = {}  # loaded states of devices not used yet

    def source(self, theta: torch.Tensor) -> RandomSource:
        """The source of a call's noise for scores ``theta``."""
        if self.numpy is not None:
            return NumpySource(self.numpy)
        return TorchSource(self._generator(theta.device), theta.dtype, theta.device)

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self.torch:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
            if key in self._pending:
                generator.set_state(self._pending.pop(key))
            self.torch[key] = generator
        return self.torch[key]

    def state_dict(self) -> dict:
        if self.numpy is not None:
            return {"numpy": self.numpy.bit_generator.state}
        return {"torch": {key: g.get_state() for key, g in self.torch.items()} | self._pending}

    def load_state_dict(self, state: dict) -> None:
        if "numpy" in state and self.numpy is not None:
            self.numpy.bit_generator.state = state["numpy"]
        for key, value in state.get("torch", {}).items():
            if key in self.torch:
                self.torch[key].set_state(value)
            else:
                self._pending[key] = value
