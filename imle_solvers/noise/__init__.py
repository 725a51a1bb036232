"""Noise for Perturb-and-MAP: distributions (:mod:`.distributions`), written once against
the primitive draws of a random source (:mod:`.sources`) of numpy, torch, JAX or
TensorFlow; and the tabulated inverse CDF that makes Sum-of-Gamma draws cheap
(:mod:`.quantile_table`)."""

from .distributions import Gumbel, NoiseDistribution, Normal, SumOfGamma
from .sources import JaxSource, TensorFlowSource, NumpySource, RandomSource, TorchSource, as_source

__all__ = [
    "Gumbel",
    "Normal",
    "SumOfGamma",
    "NoiseDistribution",
    "RandomSource",
    "NumpySource",
    "TorchSource",
    "JaxSource",
    "TensorFlowSource",
    "as_source",
]
