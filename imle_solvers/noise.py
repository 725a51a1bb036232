"""Noise distributions for Perturb-and-MAP. Each samples float64 numpy arrays from an
explicit ``numpy.random.Generator``, so a run repeats exactly in every framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import InvalidInputError


class NoiseDistribution(Protocol):
    """Anything with ``sample(rng, shape) -> float64 array of that shape``."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray: ...


@dataclass(frozen=True)
class Gumbel:
    """Standard Gumbel(0, 1) noise: the Gumbel-max trick, exact for one-hot structures."""

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.gumbel(size=shape)


@dataclass(frozen=True)
class SumOfGamma:
    r"""Sum-of-Gamma noise of Niepert et al. (2021), tailored to structures with ``k`` ones.

    .. math:: \epsilon = \frac{1}{k}\Big(\sum_{i=1}^{s} \mathrm{Gamma}(1/k,\ \text{scale}=k/i) - \log s\Big)

    The sum of ``k`` independent draws has mean :math:`H_s - \log s` (0.626 at s=10)
    and tends to Gumbel(0, 1) as ``s = nb_iterations`` grows. Note the Gamma *scale*
    is ``k/i`` (rate ``i/k``).

    Args:
        k: expected number of ones in a MAP state (k of a k-subset, ~1.3 x side of a grid path).
        nb_iterations: s, the number of Gamma terms.
    """

    k: float
    nb_iterations: int = 10

    def __post_init__(self) -> None:
        if not self.k > 0:
            raise InvalidInputError(f"SumOfGamma: k must be positive, got {self.k!r}")
        if int(self.nb_iterations) != self.nb_iterations or self.nb_iterations < 1:
            raise InvalidInputError(f"SumOfGamma: nb_iterations must be a positive integer, got {self.nb_iterations!r}")

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        i = np.arange(1, self.nb_iterations + 1, dtype=np.float64).reshape((-1,) + (1,) * len(shape))
        gammas = rng.gamma(shape=1.0 / self.k, scale=self.k / i, size=(self.nb_iterations, *shape))
        return (gammas.sum(axis=0) - np.log(self.nb_iterations)) / self.k
