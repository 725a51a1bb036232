"""What each array framework is to the library, one home per framework.

A framework is an object with a small set of hooks (:class:`Framework`); the rest of the
library asks an array's framework (:func:`framework_of`) rather than testing which one
it is. The homes are imported only when an array of theirs is first seen, so a machine
without TensorFlow never imports it.

Adding a fifth framework means a module here with a :class:`Framework` object and one
line in :data:`_HOMES`; ``docs/architecture.md`` lists the hooks.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

Array = Any  # numpy.ndarray, torch.Tensor, jax.Array or tf.Tensor
HostFunction = Callable[..., Any]
ResultSpec = tuple[Sequence[int | None], Any]  # (shape, dtype) of one result of a host call

__all__ = ["Array", "Framework", "HostFunction", "ResultSpec", "framework_named", "framework_of"]


class Framework(Protocol):
    """The hooks of one framework. ``x`` is always one of its arrays."""

    name: str
    #: its arrays may be placeholders of a trace (``jax.jit``, ``tf.function``)
    traces: bool

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this framework (only asked when the framework's
        module is imported)."""

    def namespace(self, x: Array) -> Any:
        """The array-API namespace of its arrays."""

    def device(self, x: Array) -> Any:
        """Where ``x`` lives, as the framework names it."""

    def is_traced(self, x: Array) -> bool:
        """Whether ``x`` is a placeholder being traced rather than a value."""

    def on_accelerator(self, x: Array) -> bool:
        """Whether ``x`` lives on an accelerator (where a host round trip is what costs)."""

    def batch_size(self, x: Array) -> Any:
        """``B`` of ``x`` ``(B, ...)``: an int, or a scalar array while a graph of unknown
        batch size is traced."""

    def to_numpy(self, x: Array) -> Any:
        """A host copy (or view) of a concrete ``x``."""

    def host_call(self, fn: HostFunction, args: Sequence[Array], results: Sequence[ResultSpec]) -> tuple:
        """``fn(*numpy args) -> numpy results`` called from the framework's code, traced or
        not, its results as the framework's arrays of ``results``' shapes and dtypes. Under a
        vectorising map, ``fn`` sees every mapped call at once (leading axes)."""

    def check_rows(
        self, ok: Array, report: HostFunction, args: Sequence[Array], template: str | None = None, values: Any = None
    ) -> Array | None:
        """Make sure every entry of ``ok`` ``(B,)`` holds (None: the device cannot tell, the
        host checks); where one does not, ``report(*numpy args)`` raises the worded error. A
        concrete ``ok`` is read now; a traced one is checked on the device: by an assertion
        where the framework has one (worded in the graph from ``template``, with ``{index}``
        and ``{value}`` the first bad row and its entry of ``values`` ``(B,)``, where given;
        else by a host call of ``report``), or else by the returned poison ``(B,)`` (0 where
        ``ok``, NaN elsewhere) that the caller adds to the rows of its result."""


# framework name -> (module of its home, the array module whose import makes it possible)
_HOMES = {
    "numpy": ("imle_solvers.frameworks.numpy", "numpy"),
    "torch": ("imle_solvers.frameworks.torch", "torch"),
    "jax": ("imle_solvers.frameworks.jax", "jax"),
    "tensorflow": ("imle_solvers.frameworks.tensorflow", "tensorflow"),
}
_BY_TYPE: dict[type, Framework] = {}  # a dict access on the hot path, where isinstance checks add up


def framework_named(name: str) -> Framework:
    """The framework called ``name`` (``"numpy"``, ``"torch"``, ``"jax"``, ``"tensorflow"``)."""
    return importlib.import_module(_HOMES[name][0]).FRAMEWORK


def framework_of(x: Any) -> Framework:
    """The framework of array ``x``; a TypeError for anything else."""
    kind = type(x)
    found = _BY_TYPE.get(kind)
    if found is None:
        found = _find(x)
        _BY_TYPE[kind] = found
    return found


def _find(x: Any) -> Framework:
    for name, (_, module) in _HOMES.items():
        if module in sys.modules:  # an array of a framework never imported cannot exist
            framework = framework_named(name)
            if framework.owns(x):
                return framework
    raise TypeError(f"expected a numpy, torch, JAX or TensorFlow array, got {type(x).__name__}")


def poison_of(ok: Array, xp: Any, dtype: Any) -> Array:
    """``(B,)``: 0 where ``ok``, NaN elsewhere, in ``dtype`` (what :meth:`Framework.check_rows`
    returns where it cannot assert)."""
    zero = xp.zeros(ok.shape, dtype=dtype)
    return xp.where(ok, zero, zero + float("nan"))
