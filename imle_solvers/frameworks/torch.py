"""PyTorch as a framework: eager tensors on their device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

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
        return x.device.type != "cpu"

    def batch_size(self, x: Array) -> int:
        return x.shape[0]

    def to_numpy(self, x: Array) -> np.ndarray:
        return x.detach().cpu().numpy()

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
