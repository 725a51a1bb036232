r"""The inverse CDF of one entry of Sum-of-Gamma noise, tabulated once per ``(k, s)``.

One entry of Sum-of-Gamma noise is

$$
\epsilon = S - \frac{\log s}{k}, \qquad S = \sum_{i=1}^{s} \frac{G_i}{i},
\quad G_i \sim \mathrm{Gamma}(1/k, 1) \text{ independent.}
$$

Drawing it exactly takes ``s`` small-shape Gamma draws, which are slow in every
framework. Its distribution is one-dimensional and fixed by ``(k, s)``, so instead we
compute its quantiles once, exactly, and draw by inverse-transform sampling: a uniform
``u``, then linear interpolation between the quantiles at ``u``'s two neighbouring
knots ``j / N``. The sampler's CDF equals the exact CDF at every knot and both are
monotone in between, so their Kolmogorov distance is below ``1 / N`` (``N = KNOTS``);
the last cell ``[1 - 1/N, 1)`` is drawn from an exponential tail at the exact hazard
rate there.

The exact CDF comes from the Laplace transform of ``S``,
$\mathbb{E}[e^{-pS}] = \prod_{i=1}^{s} (1 + p/i)^{-1/k}$, inverted numerically
with the fixed Talbot method (Abate and Valko, 2004), accurate to about 1e-11 here; the
quantiles are then found by Newton's method on ``log x``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from .._array import Array, array_namespace, framework_of, from_numpy

KNOTS = 4096  # the sampler's Kolmogorov distance to the exact CDF is below 1 / KNOTS
TALBOT_NODES = 32
# Terms log(1 + p/i) for i beyond this are summed through log-gamma differences, so that
# a table for a large s costs little more than one for s = 16.
DIRECT_TERMS = 16
NEWTON_TOLERANCE = 1e-9  # on the CDF at each knot
NEWTON_MAX_STEPS = 30


def _log_laplace(p: np.ndarray, shape: float, terms: int) -> np.ndarray:
    r"""$\log \mathbb{E}[e^{-pS}] = -a \sum_{i=1}^{s} \log(1 + p/i)$ for complex ``p`` with
    ``Im p >= 0`` (where the principal logarithms add up without branch jumps)."""
    direct = np.arange(1, min(terms, DIRECT_TERMS) + 1)
    total = np.sum(np.log1p(p[..., None] / direct), axis=-1)
    if terms > DIRECT_TERMS:
        total = total + _log_rising(p, DIRECT_TERMS, terms)
    return -shape * total


def _log_rising(p: np.ndarray, low: int, high: int) -> np.ndarray:
    r"""$\sum_{i=low+1}^{high} \log(1 + p/i) = \log\Gamma(high+1+p) - \log\Gamma(low+1+p) - \log(high!/low!)$.

    The log-gamma difference loses about ``|p| * 1e-16`` to cancellation, so for large
    ``|p|`` it is taken from Stirling's series in a cancellation-free form."""
    constant = special.gammaln(high + 1) - special.gammaln(low + 1)
    out = np.empty_like(p)
    near = np.abs(p) < 1e6
    out[near] = special.loggamma(high + 1 + p[near]) - special.loggamma(low + 1 + p[near]) - constant
    a, count = low + 1 + p[~near], high - low  # count = b - a, exactly (not from the rounded a, b)
    b = a + count
    # log G(b) - log G(a) = (a - 1/2) log(b/a) + (b - a)(log b - 1) + 1/(12 b) - 1/(12 a) + O(|a|^-3)
    out[~near] = (a - 0.5) * _log1p(count / a) + count * (np.log(b) - 1) - count / (12 * a) / b - constant
    return out


def _log1p(w: np.ndarray) -> np.ndarray:
    """``log(1 + w)`` for complex ``w``, accurate for tiny ``|w|`` (numpy's complex ``log1p`` is not)."""
    return 0.5 * np.log1p(2 * w.real + (w.real**2 + w.imag**2)) + 1j * np.arctan2(w.imag, 1 + w.real)


def sum_of_gamma_cdf(x: np.ndarray, k: float, terms: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The exact CDF and density of $S = \sum_{i=1}^{s} G_i / i$ at ``x > 0``.

    Args:
        x: ``(X,)`` points, all positive.
        k: the noise's ``k`` (each ``G_i`` has shape ``1/k``).
        terms: ``s``, the number of Gamma terms.
    Returns:
        ``(F(x), f(x))``, both ``(X,)`` float64, accurate to about 1e-11.
    """
    x = np.asarray(x, dtype=np.float64)
    theta = np.arange(1, TALBOT_NODES) * np.pi / TALBOT_NODES
    cot = 1.0 / np.tan(theta)
    sigma = theta + (theta * cot - 1.0) * cot
    r = 2.0 * TALBOT_NODES / (5.0 * x)
    p = r[:, None] * theta * (cot + 1j)  # the Talbot contour, upper half
    weights = np.exp(x[:, None] * p + _log_laplace(p, 1.0 / k, terms)) * (1.0 + 1j * sigma)
    at_r = np.exp(r * x + _log_laplace(r.astype(complex), 1.0 / k, terms).real)
    density = (r / TALBOT_NODES) * (0.5 * at_r + np.sum(weights.real, axis=1))
    cdf = (r / TALBOT_NODES) * (0.5 * at_r / r + np.sum((weights / p).real, axis=1))
    return cdf, density


@dataclass(frozen=True, eq=False)
class QuantileTable:
    """The inverse CDF of one Sum-of-Gamma entry, for drawing by inverse transform.

    Attributes:
        values: ``(KNOTS,)`` the quantiles of ``epsilon`` at ``u = j / KNOTS``, ``j < KNOTS``
            (the first is the support's lower end, ``-log(s) / k``).
        steps: ``(KNOTS,)`` each knot's rise to the next (0 for the last).
        tail_rate: the exponential rate of the last cell, the exact hazard at its start.
    """

    values: np.ndarray
    steps: np.ndarray
    tail_rate: float
    _torch_copies: dict = field(default_factory=dict, repr=False)

    def inverse_cdf(self, u: Array) -> Array:
        """``epsilon`` at probabilities ``u`` in [0, 1), in ``u``'s framework, dtype and device."""
        xp = array_namespace(u)
        values, steps = self._constants(u)
        knots = len(self.values)
        position = xp.reshape(u, (-1,)) * knots  # take() wants 1-d indices
        cell = xp.clip(xp.floor(position), max=knots - 1)
        within = position - cell
        index = xp.astype(cell, xp.int64 if framework_of(u) == "torch" else xp.int32)  # JAX lacks int64 by default
        inner = _gather(values, index) + within * _gather(steps, index)
        tail = values[knots - 1] - xp.log1p(-within) / self.tail_rate
        return xp.reshape(xp.where(cell == knots - 1, tail, inner), u.shape)

    def _constants(self, like: Array) -> tuple[Array, Array]:
        """``values`` and ``steps`` in ``like``'s framework, dtype and device. Torch copies are
        kept, so a GPU receives its copy once; JAX and TensorFlow build constants, which is
        cheap and also right while tracing."""
        if framework_of(like) != "torch":
            return from_numpy(self.values, like), from_numpy(self.steps, like)
        key = (str(like.device), str(like.dtype))
        if key not in self._torch_copies:
            self._torch_copies[key] = (from_numpy(self.values, like), from_numpy(self.steps, like))
        return self._torch_copies[key]


def _gather(table: Array, index: Array) -> Array:
    """``table[index]`` for a 1-d ``table`` and 1-d integer ``index`` (in torch ``index_select``
    with int64 indices, several times faster than indexing or array_api_compat's ``take``)."""
    framework = framework_of(table)
    if framework == "torch":
        return table.index_select(0, index)
    if framework == "tensorflow":
        return array_namespace(table).take(table, index)
    return table[index]


@functools.lru_cache(maxsize=64)
def sum_of_gamma_table(k: float, terms: int, knots: int = KNOTS) -> QuantileTable:
    """The :class:`QuantileTable` of Sum-of-Gamma noise with parameters ``k`` and ``s = terms``
    (built in about half a second, then cached)."""
    u = np.arange(1, knots) / knots
    quantiles = _quantiles(u, k, terms)
    values = np.concatenate([[0.0], quantiles]) - np.log(terms) / k
    cdf, density = sum_of_gamma_cdf(quantiles[-1:], k, terms)
    tail_rate = float(density[0] / (1.0 - cdf[0]))
    steps = np.append(np.diff(values), 0.0)
    return QuantileTable(values=values, steps=steps, tail_rate=tail_rate)


def _quantiles(u: np.ndarray, k: float, terms: int) -> np.ndarray:
    """``S``'s quantiles at probabilities ``u``: a first guess from the CDF on a log grid,
    then Newton's method on ``log x`` (the density at tiny x may be unbounded)."""
    mean = np.sum(1.0 / np.arange(1, terms + 1)) / k
    lowest = np.log(mean) - 690.0  # about 1e-300 * mean: below it, epsilon is its lower end
    grid = np.exp(np.linspace(lowest, np.log(mean + 40.0), 4000))
    cdf, _ = sum_of_gamma_cdf(grid, k, terms)
    log_x = np.interp(u, np.maximum.accumulate(np.clip(cdf, 0.0, 1.0)), np.log(grid))
    for _ in range(NEWTON_MAX_STEPS):
        x = np.exp(log_x)
        cdf, density = sum_of_gamma_cdf(x, k, terms)
        residual = cdf - u
        at_floor = (log_x <= lowest) & (residual > 0)
        if np.all((np.abs(residual) < NEWTON_TOLERANCE) | at_floor):
            return np.where(at_floor, 0.0, x)
        step = np.clip(residual / np.maximum(x * density, 1e-300), -2.0, 2.0)
        log_x = np.maximum(log_x - step, lowest)
    raise RuntimeError(f"Sum-of-Gamma quantiles for k={k}, s={terms} did not converge")
