"""PyTorch binding: the step (:mod:`imle_solvers.step`) under ``torch.autograd``.

What is torch's own here: the autograd hooks (:mod:`.layer`, :mod:`.losses`), the noise
generators (one ``torch.Generator`` per device, or numpy's:
:class:`~imle_solvers.frameworks.torch.NoiseGenerators`) and their place in
``state_dict()``, and ``nn.Module`` plumbing. Tensors keep their dtype and device:
solvers that run on any array (top-k) see the tensor itself, others get a host copy.
"""

from __future__ import annotations

from ..errors import missing_dependency

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised without torch installed
    raise missing_dependency("torch", "torch") from error

from ..frameworks.torch import NoiseGenerators
from ..problems.torch_function import TorchFunctionProblem
from .argmax import SoftArgmax, SoftArgmaxLoss, SparseArgmax, SparseArgmaxLoss, soft_argmax, sparse_argmax
from .layer import IMLELayer, imle
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

__all__ = [
    "CaVELoss", "CMAPLoss", "ListwiseLTRLoss", "NCELoss", "PairwiseLTRLoss", "PGLoss", "PointwiseLTRLoss",
    "RegularizedFenchelYoungLoss", "RegularizedFrankWolfe",
    "FenchelYoungLoss", "IMLELayer", "NoiseGenerators", "Pushforward", "SPOPlusLoss", "StructuredSVMLoss", "TorchFunctionProblem", "imle",
    "SoftArgmax", "SoftArgmaxLoss", "SparseArgmax", "SparseArgmaxLoss", "soft_argmax", "sparse_argmax",
]
