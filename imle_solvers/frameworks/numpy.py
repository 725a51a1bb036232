"""numpy as a framework: eager, on the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import Array, HostFunction, ResultSpec


class NumpyFramework:
    name = "numpy"
    traces = False

    def owns(self, x: Any) -> bool:
        return isinstance(x, (np.ndarray, np.generic))

    def namespace(self, x: Array) -> Any:
        from array_api_compat import numpy as namespace

        return namespace

    def device(self, x: Array) -> Any:
        return "cpu"

    def is_traced(self, x: Array) -> bool:
        return False

    def on_accelerator(self, x: Array) -> bool:
        return False

    def batch_size(self, x: Array) -> int:
        return x.shape[0]

    def to_numpy(self, x: Array) -> np.ndarray:
        return x

    def host_call(self, fn: HostFunction, args: Sequence[Array], results: Sequence[ResultSpec]) -> tuple:
        return tuple(np.asarray(r, dtype=dtype) for r, (_, dtype) in zip(fn(*args), results))

    def check_rows(self, ok: Array, report: HostFunction, args: Sequence[Array], *words: Any) -> None:
        if ok is None or not np.all(ok):
            report(*args)


FRAMEWORK = NumpyFramework()
