"""JAX binding: the step (:mod:`imle_solvers.step`) as a pure function of ``(theta, key[, state])``.

The step runs on JAX arrays inside a ``jax.custom_vjp``, so it is traced, compiled and
vmapped with the rest of the model; an eager call runs it compiled too (one ``jax.jit``
per shape and plan). What is JAX's own here: the ``custom_vjp`` (:mod:`.layer`, :mod:`.losses`), the random source (the
key, drawn with ``jax.random``, or ``numpy.random.default_rng(numpy_seed(key))`` with
``noise_source="numpy"``), and the adaptive state as a pytree (:mod:`.state`).

An array-native solver (top-k; the grid's Bellman-Ford, which ``backend="auto"`` picks
for JAX, whose arrays are always traced here, and which the layer then reports) runs as
JAX ops: such a step never leaves the device, checks included (inside a trace a bad row
is NaN), so it exports with ``jax.export``. Other solvers are reached through one
``jax.pure_callback`` per solve; under ``jax.vmap`` all mapped calls are solved in one
oracle call. See docs/frameworks.md.

Adaptive state (AIMLE): an :class:`~imle_solvers.AdaptiveState` passed in; its update
is only known in the backward pass, so it comes back as the *cotangent of the state*:
:func:`value_and_grad` returns the next state as a value. Mapped calls (``jax.vmap``)
sharing one state move it once, by their mean update.

Failure policy: with ``on_failure`` other than ``"raise"`` a call returns ``(z, status)``.
"""

from __future__ import annotations

from ..errors import missing_dependency

try:
    import jax  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised without jax installed
    raise missing_dependency("jax", "jax") from error

from ..frameworks.jax import numpy_seed
from .argmax import SoftArgmaxLoss, SparseArgmaxLoss, soft_argmax, sparse_argmax
from .layer import IMLEFunction, imle
from .losses import (
    CaVELoss,
    CMAPLoss,
    FenchelYoungLoss,
    ListwiseLTRLoss,
    NCELoss,
    PairwiseLTRLoss,
    PGLoss,
    PointwiseLTRLoss,
    RegularizedFenchelYoungLoss,
    SPOPlusLoss,
    StructuredSVMLoss,
)
from .pushforward import Pushforward
from .regularized import RegularizedFrankWolfe
from .state import State, apply_state_update, value_and_grad

__all__ = [
    "CaVELoss", "CMAPLoss", "ListwiseLTRLoss", "NCELoss", "PairwiseLTRLoss", "PGLoss", "PointwiseLTRLoss",
    "FenchelYoungLoss", "IMLEFunction", "Pushforward", "RegularizedFenchelYoungLoss", "RegularizedFrankWolfe",
    "SPOPlusLoss", "StructuredSVMLoss", "apply_state_update", "imle",
    "numpy_seed", "value_and_grad",
    "SoftArgmaxLoss", "SparseArgmaxLoss", "soft_argmax", "sparse_argmax",
]
