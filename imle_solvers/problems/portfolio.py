"""PyEPO's Markowitz portfolio: the best expected return within a quadratic risk budget.

A problem of its own rather than an :class:`~imle_solvers.ILP` with a quadratic row:
the ILP class, its spec language, its instance data and its three backends are all
linear (CP-SAT and HiGHS take no quadratic constraint), so a quadratic row would touch
every one of them for one problem that has exactly one such row.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._registration import register
from ..errors import InvalidInputError
from .base import ContentIdentity, Problem, Sense
from .ilp import ILP_SCORE_LIMIT

#: PyEPO's risk multiplier (``portfolioModel(gamma=2.25)``).
PYEPO_GAMMA = 2.25
# how far below zero an eigenvalue of a float covariance may be (its rounding) and still be PSD
_PSD_TOLERANCE = 1e-10


@register
@dataclass(frozen=True, eq=False)
class Portfolio(ContentIdentity, Problem):
    """Allocate a unit budget over ``m`` assets for the largest expected return, within a
    risk budget (PyEPO's ``portfolioModel``)::

        z = argmax_x  theta @ x   s.t.  sum(x) == 1,  0 <= x <= 1,  x @ covariance @ x <= risk_level

    ``theta`` are the assets' expected returns (PyEPO's costs ``c``, which it maximises);
    ``z`` the continuous allocation ``x``. Sense ``"max"``. ``risk_level`` is
    ``gamma * mean(covariance)``, PyEPO's budget. The covariance is the same for every
    instance (as in PyEPO's data).

    Args:
        covariance: ``(m, m)`` symmetric positive semi-definite (float64, stored read-only).
        gamma: the risk multiplier, ``>= 0`` (default 2.25, PyEPO's).

    Shapes: theta and z are ``(B, m)``; z is float, not 0/1.
    """

    covariance: np.ndarray
    gamma: float = PYEPO_GAMMA
    kind: ClassVar[str] = "portfolio"
    #: SCIP reads 1e20 as infinity: the ILPs' bound, for the same backend
    score_limit: ClassVar[float] = ILP_SCORE_LIMIT
    fingerprint: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        covariance = _checked_covariance(self.covariance)
        object.__setattr__(self, "covariance", covariance)
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, (int, float, np.integer, np.floating)) or not (
            math.isfinite(self.gamma) and self.gamma >= 0
        ):
            raise InvalidInputError(f"Portfolio: gamma must be a finite number >= 0, got {self.gamma!r}")
        object.__setattr__(self, "gamma", float(self.gamma))
        digest = hashlib.sha256(repr(self.gamma).encode())
        digest.update(covariance.astype("<f8", copy=False).tobytes())
        object.__setattr__(self, "fingerprint", digest.hexdigest())

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle restores the attributes without __post_init__; an unpickled array is writeable
        state["covariance"].flags.writeable = False
        self.__dict__.update(state)

    @property
    def n_assets(self) -> int:
        return len(self.covariance)

    @property
    def risk_level(self) -> float:
        """The risk budget ``gamma * mean(covariance)`` (PyEPO's ``risk_level``)."""
        return self.gamma * float(np.mean(self.covariance))

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_assets,)

    @property
    def sense(self) -> Sense:
        return "max"

    def __repr__(self) -> str:
        return f"Portfolio({self.n_assets} assets, gamma={self.gamma:g}, risk_level={self.risk_level:.4g})"


def _checked_covariance(covariance: Any) -> np.ndarray:
    """``covariance`` as a fresh read-only ``(m, m)`` float64 array, or an error saying why
    it is no covariance (not square, not finite, not symmetric, not positive semi-definite)."""
    array = np.array(covariance, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise InvalidInputError(
            f"Portfolio: covariance must be a square (m, m) matrix, m >= 1, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise InvalidInputError("Portfolio: covariance holds a non-finite value")
    scale = max(float(np.abs(array).max()), np.finfo(np.float64).tiny)
    if np.abs(array - array.T).max() > 1e-12 * scale:
        raise InvalidInputError("Portfolio: covariance must be symmetric")
    smallest = float(np.linalg.eigvalsh(array).min())
    if smallest < -_PSD_TOLERANCE * scale:
        raise InvalidInputError(
            f"Portfolio: covariance must be positive semi-definite (its smallest eigenvalue is {smallest:g})"
        )
    array.flags.writeable = False
    return array
