"""What the estimators' formula tests share: a noise whose draw is given in advance, and a
top-k MAP oracle (imported from beside them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imle_solvers.adapters.topk import topk_mask


@dataclass(frozen=True)
class FixedNoise:
    """Noise whose draw is given in advance, to check formulas."""

    values: np.ndarray

    def sample(self, rng, shape):
        return np.broadcast_to(self.values, shape).copy()


def topk(k):
    """The batched top-``k`` oracle ``(N, n) -> (N, n)``, ties to the lower index."""
    return lambda theta: topk_mask(theta, k)
