"""TensorFlow binding: the step (:mod:`imle_solvers.step`) in a Keras layer.

What is Keras' own here: the ``tf.custom_gradient`` (:mod:`.layer`, :mod:`.losses`), the noise (stateless TensorFlow
draws keyed by ``(seed, counter)``, a non-trainable int64 weight ``noise_state``, so a
restored model draws what the saved one would have drawn next; or, with
``noise_source="numpy"``, ``numpy.random.default_rng(seed)`` drawn in turn, as the torch
layer draws), the estimator's state as float64 weights (``beta``, ``nnz_average``,
``steps``), the config, masks and ``fit``'s graphs. An array-native solver (top-k) runs
as TensorFlow ops, eagerly, in ``tf.function``, in ``model.fit`` and under XLA; other
solvers are reached through ``tf.numpy_function`` (then ``supports_jit = False``).
"""

from __future__ import annotations

from ..errors import missing_dependency

try:
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised without tensorflow installed
    raise missing_dependency("tensorflow", "tensorflow") from error

from .argmax import SoftArgmax, SoftArgmaxLoss, SparseArgmax, SparseArgmaxLoss, soft_argmax, sparse_argmax
from .layer import IMLELayer, imle
from .losses import CaVELoss, FenchelYoungLoss, PGLoss, RegularizedFenchelYoungLoss, SPOPlusLoss, StructuredSVMLoss
from .pool_losses import CMAPLoss, ListwiseLTRLoss, NCELoss, PairwiseLTRLoss, PointwiseLTRLoss
from .pushforward import Pushforward
from .regularized import RegularizedFrankWolfe

__all__ = [
    "CaVELoss", "CMAPLoss", "ListwiseLTRLoss", "NCELoss", "PairwiseLTRLoss", "PGLoss", "PointwiseLTRLoss",
    "RegularizedFenchelYoungLoss", "RegularizedFrankWolfe", "FenchelYoungLoss",
    "IMLELayer", "Pushforward", "SPOPlusLoss", "StructuredSVMLoss", "imle",
    "SoftArgmax", "SoftArgmaxLoss", "SparseArgmax", "SparseArgmaxLoss", "soft_argmax", "sparse_argmax",
]
