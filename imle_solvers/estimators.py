r"""Gradient estimators through a MAP solver, framework-free.

Each estimator is a pair of functions on array-API arrays (numpy, torch on any device,
JAX inside ``jit``/``vmap``, TensorFlow through :mod:`imle_solvers.frameworks.tensorflow_namespace`), with
everything the backward pass needs carried explicitly:

- ``sample(theta, solve, sign=..., rng=...) -> (z, residuals)``: the forward pass, in two
  halves that the bindings call apart (the noise drawn from their own source):
  ``draw(theta, rng)``, the noise, then ``sample_with(theta, noise, solve, sign=...)``;
- ``gradient(residuals, grad_z, solve, state) -> (grad_theta, state)``: the backward pass.

``solve`` is a batched MAP oracle in the problem's own sense,
``(N, *shape) -> (N, *shape)``; ``sign`` is +1 for a max problem and -1 for a min
problem (costs). Users pass costs as costs: the public methods turn the problem into
a max problem over ``sign * theta`` once, on entry (:func:`oriented`), the estimators'
formulas are written for max problems only, and the gradient is turned back on exit.
A ``solve`` of ``N`` rows for a batch of ``B`` instances always holds ``N / B``
consecutive rows per instance (instance-major): the failure policy
(:mod:`imle_solvers.failures`) relies on it to tell which instance a failed row is of.
``rng`` is a ``numpy.random.Generator`` (noise drawn on the host in float64, then moved
to ``theta``'s dtype and device) or any
:class:`~imle_solvers.noise.RandomSource` (noise drawn where ``theta`` is; the bindings
pass their framework's). The estimators check shapes, not values: their callers check
values once (the bindings do, see their ``validate_args``).

Shapes: ``theta`` is ``(B, *shape)``. ``z`` (and ``grad_z``) is ``(B, *shape)`` when
``samples == 1`` and ``(B, samples, *shape)`` otherwise; with ``marginal_samples > 1``
each returned state is the mean of that many MAP states (a marginal estimate with
entries in [0, 1]). ``grad_theta`` is ``(B, *shape)``: per-sample gradients averaged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from ._array import Array, array_namespace, device, reshape, state_float
from ._registration import register
from .errors import InvalidInputError
from .noise import Gumbel, NoiseDistribution, Normal, RandomSource, as_source

Solve = Callable[[Array], Array]
Rng = np.random.Generator | RandomSource


@dataclass(frozen=True)
class Residuals:
    """What a backward pass needs from its forward pass.

    Attributes:
        theta: ``(B, *shape)`` the scores of the max problem, ``sign * theta``.
        noise: ``(B, samples, marginal_samples, *shape)`` the noise draw, or None.
        z: ``(B, samples, *shape)`` the sampled (marginal) states.
        sign: +1 max problem, -1 min problem.

    An estimator that needs more keeps it in a subclass (:class:`PerturbedResiduals`); the
    bindings carry every array field of the residuals' own type to the backward pass.
    """

    theta: Array
    noise: Array | None
    z: Array
    sign: int


@dataclass(frozen=True)
class PerturbedResiduals(Residuals):
    """The residuals of :class:`PerturbedOptimizer`: those of every estimator, and

    Attributes:
        states: ``(B, samples, marginal_samples, *shape)`` the individual perturbed MAP
            states, of the max problem (``z`` is their mean over the marginal samples).
    """

    states: Array


class Estimator(Protocol):
    noise: NoiseDistribution | None
    samples: int
    marginal_samples: int

    def initial_state(self) -> Any: ...

    def sample(self, theta: Array, solve: Solve, *, sign: int, rng: Rng) -> tuple[Array, Residuals]: ...

    def draw(self, theta: Array, rng: Rng) -> Array | None: ...

    def sample_with(self, theta: Array, noise: Array | None, solve: Solve, *, sign: int) -> tuple[Array, Residuals]: ...

    def gradient(self, residuals: Residuals, grad_z: Array, solve: Solve, state: Any = None) -> tuple[Array, Any]: ...


# --- shared pieces -------------------------------------------------------------


def draw_noise(noise: NoiseDistribution | None, rng: Rng, theta: Array, samples: int, marginal_samples: int) -> Array | None:
    """Noise ``(B, samples, marginal_samples, *shape)`` in ``theta``'s namespace, dtype, device."""
    if noise is None:
        return None
    draw = noise.sample(as_source(rng), (theta.shape[0], samples, marginal_samples, *theta.shape[1:]))
    if not isinstance(draw, np.ndarray) and draw.dtype == theta.dtype:
        return draw  # a native source draws on theta's device already
    return array_namespace(theta).asarray(draw, dtype=theta.dtype, device=device(theta))


def oriented(solve: Solve, sign: int) -> Solve:
    """The MAP oracle of the max problem over ``sign * theta``, from the problem's own ``solve``."""
    if sign == 1:
        return solve
    return lambda scores: solve(-scores)


def perturbed_map(
    solve: Solve, theta: Array, noise: Array | None, temperature: float, *, scratch: bool = False
) -> Array:
    """Perturb-and-MAP states of a max problem, averaged over the marginal samples.

    Args:
        solve: the max problem's oracle (see :func:`oriented`).
        theta: ``(B, samples, *shape)`` scores per sample.
        noise: ``(B, samples, M, *shape)`` or None (then the plain MAP state of ``theta``).
        scratch: ``theta`` is the caller's temporary, which may be overwritten (numpy and
            torch then perturb it in place: a buffer fewer on the hot path, the same values).
    Returns:
        ``(B, samples, *shape)``: the mean over M of ``MAP(theta + temperature * noise)``.
    """
    event = tuple(theta.shape[2:])
    if noise is None or temperature == 0:
        return reshape(solve(reshape(theta, (-1, *event))), theta.shape)
    theta = theta[:, :, None, ...]
    if temperature != 1:
        perturbed = theta + temperature * noise
    elif scratch and noise.shape[2] == 1:
        perturbed = theta
        perturbed += noise  # in place for numpy and torch, a rebinding for JAX and TensorFlow
    else:
        perturbed = theta + noise
    z = reshape(solve(reshape(perturbed, (-1, *event))), perturbed.shape)
    return mean_over_axis(z, 2)


def multiplicative_factor(noise: Array, sigma: float) -> Array:
    """``exp(sigma Z - sigma^2 / 2)``, the factor of a multiplicative perturbation (mean 1
    for Normal ``Z``), elementwise on ``noise`` of any shape."""
    return array_namespace(noise).exp(sigma * noise - 0.5 * sigma * sigma)


def perturb(scores: Array, noise: Array, sigma: float, multiplicative: bool) -> Array:
    """The perturbed scores of a perturbed optimizer: ``scores + sigma * noise``, or
    ``scores * exp(sigma * noise - sigma^2 / 2)`` when ``multiplicative`` (``scores``
    broadcast against ``noise``)."""
    return scores * multiplicative_factor(noise, sigma) if multiplicative else scores + sigma * noise


def mean_over_axis(x: Array, axis: int) -> Array:
    """The mean over ``axis``; a view, not a pass over the data, when that axis has length 1."""
    if x.shape[axis] == 1:
        return x[(slice(None),) * axis + (0,)]
    return array_namespace(x).mean(x, axis=axis)


def output_shape(theta_shape: Sequence[int | None], samples: int) -> tuple[int | None, ...]:
    """The shape of ``z`` for a ``theta`` of shape ``(B, *shape)``: ``(B, *shape)``, or
    ``(B, samples, *shape)`` when the estimator draws several samples (see :func:`output`)."""
    batch, *event = theta_shape
    return (batch, *((samples,) if samples > 1 else ()), *event)


def per_sample(grad_z: Array, samples: int, theta: Array) -> Array:
    """Upstream gradient as ``(B, samples, *shape)``, checked against the output's shape."""
    expected = output_shape(tuple(theta.shape), samples)
    if tuple(grad_z.shape) != expected:
        raise InvalidInputError(f"dL/dz: expected shape {expected}, got {tuple(grad_z.shape)}")
    return reshape(grad_z, (-1, samples, *theta.shape[1:]))


def output(z: Array, samples: int) -> Array:
    """``(B, samples, *shape)`` states as the layer returns them (sample axis dropped when 1)."""
    return z[:, 0, ...] if samples == 1 else z


def instance_norm(x: Array, event_ndim: int) -> Array:
    """Euclidean norm over the last ``event_ndim`` axes."""
    xp = array_namespace(x)
    axes = tuple(range(x.ndim - event_ndim, x.ndim))
    return xp.sqrt(xp.sum(x * x, axis=axes))


def _check_positive_int(owner: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidInputError(f"{owner}: {name} must be a positive integer, got {value!r}")


#: The most perturbed solves per instance and call (``samples * marginal_samples``) a
#: constructor takes: beyond it a call would hold tens of megabytes per score of every
#: instance and run the solver millions of times per instance, which no setting means.
MAX_PERTURBATIONS = 2**20
# what a call holds per score of an instance and perturbation, at the least: the noise,
# the perturbed scores and the states, float32 each
_BYTES_PER_PERTURBATION = 3 * 4


def check_perturbations(owner: str, **counts: int) -> None:
    """``counts`` (``samples=...``, ``marginal_samples=...``) are positive integers whose
    product, the perturbed solves per instance and call, is at most
    :data:`MAX_PERTURBATIONS`; else an :class:`InvalidInputError` naming ``owner``, the
    settings and the memory a call would take."""
    _check_positive_int(owner, **counts)
    total = math.prod(int(value) for value in counts.values())
    if total > MAX_PERTURBATIONS:
        raise InvalidInputError(
            f"{owner}: {' * '.join(counts)} = {total:,} perturbed solves per instance and call, beyond "
            f"{MAX_PERTURBATIONS:,} (imle_solvers.estimators.MAX_PERTURBATIONS): a call would hold at least "
            f"{_bytes(total * _BYTES_PER_PERTURBATION)} per score of each instance (noise, perturbed scores and "
            f"states in float32) and solve each instance {total:,} times"
        )


def _bytes(count: float) -> str:
    """``count`` bytes for a message: ``"12 TB"``."""
    units = ("B", "kB", "MB", "GB")
    for unit in units:
        if count < 1000:
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} TB"


def _check_number(owner: str, name: str, value: Any, *, low: float, strict: bool = False) -> None:
    """``value`` must be a finite real number ``>= low`` (``> low`` when ``strict``)."""
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value < low or (strict and value == low):
        bound = f"{'>' if strict else '>='} {low:g}"
        raise InvalidInputError(f"{owner}: {name} must be a finite number {bound}, got {value!r}")


def _check_noise(owner: str, noise: Any) -> None:
    if noise is not None and not callable(getattr(noise, "sample", None)):
        raise InvalidInputError(
            f"{owner}: noise must be a noise distribution such as Gumbel() or SumOfGamma(k=...), or None; "
            f"got {noise!r}"
        )


@dataclass(frozen=True)
class _PerturbAndMAP:
    """What all estimators share: the forward pass ``z = MAP(theta + tau * eps)``, their
    settings' checks, and the turn of a min problem into a max problem on entry and of
    the gradient back on exit. Subclasses write :meth:`max_gradient` for max problems."""

    noise: NoiseDistribution | None = None
    _: KW_ONLY
    noise_temperature: float = 1.0
    samples: int = 1
    marginal_samples: int = 1

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _check_noise(owner, self.noise)
        _check_number(owner, "noise_temperature", self.noise_temperature, low=0.0)
        check_perturbations(owner, samples=self.samples, marginal_samples=self.marginal_samples)

    def initial_state(self) -> Any:
        return None

    def sample(self, theta: Array, solve: Solve, *, sign: int, rng: Rng) -> tuple[Array, Residuals]:
        """Forward pass: ``z`` as described in the module docstring, and the residuals."""
        return self.sample_with(theta, self.draw(theta, rng), solve, sign=sign)

    def draw(self, theta: Array, rng: Rng) -> Array | None:
        """The noise ``(B, samples, marginal_samples, *shape)`` for ``theta``, or None."""
        return draw_noise(self.noise, rng, theta, self.samples, self.marginal_samples)

    def sample_with(self, theta: Array, noise: Array | None, solve: Solve, *, sign: int) -> tuple[Array, Residuals]:
        """Forward pass with a given noise draw. Rows are independent, so the batches of
        several calls may be concatenated into one (one solver call under ``jax.vmap``)."""
        xp = array_namespace(theta)
        scores = theta if sign == 1 else -theta
        per_sample_theta = scores[:, None, ...]
        if self.samples > 1:
            per_sample_theta = xp.broadcast_to(per_sample_theta, (theta.shape[0], self.samples, *theta.shape[1:]))
        z = perturbed_map(oriented(solve, sign), per_sample_theta, noise, self.noise_temperature)
        return output(z, self.samples), Residuals(theta=scores, noise=noise, z=z, sign=sign)

    def gradient(self, residuals: Residuals, grad_z: Array, solve: Solve, state: Any = None) -> tuple[Array, Any]:
        """Backward pass: the ``(B, *shape)`` gradient with respect to ``theta`` of the loss
        whose gradient with respect to ``z`` is ``grad_z``, and the updated state."""
        g = per_sample(grad_z, self.samples, residuals.theta)
        grad, state = self.max_gradient(residuals, g, oriented(solve, residuals.sign), state)
        return (grad if residuals.sign == 1 else -grad), state

    def max_gradient(self, residuals: Residuals, g: Array, solve: Solve, state: Any) -> tuple[Array, Any]:
        """The gradient ``(B, *shape)`` for the max problem over ``residuals.theta``, from
        ``g`` ``(B, samples, *shape)`` and that problem's oracle ``solve``."""
        raise NotImplementedError


# --- the estimators --------------------------------------------------------------


class NoNoiseWarning(UserWarning):
    """``IMLE()`` built without a ``noise`` argument: it perturbs nothing, so it is
    blackbox differentiation (the MAP state forward). ``noise=None`` says it is meant."""


# IMLE's noise when none was passed (a sentinel, so that an explicit noise=None is told apart)
_NOISE_NOT_GIVEN: Any = type("NoiseNotGiven", (), {"__repr__": lambda self: "<noise not given>"})()


@register
@dataclass(frozen=True, kw_only=True)
class IMLE(_PerturbAndMAP):
    r"""Implicit Maximum Likelihood Estimation (Niepert, Minervini, Franceschi, NeurIPS 2021).

    Forward $z = \mathrm{MAP}(\theta + \tau\epsilon)$; backward, with the same
    $\epsilon$, the target $\theta' = \alpha\theta - \lambda\,\partial L/\partial z$
    (for a max problem; the sign is flipped for a min problem) and

    $$
    \nabla_\theta L \approx \big(z - \mathrm{MAP}(\theta' + \tau'\epsilon)\big) / \lambda
    $$

    (without the $1/\lambda$ when ``scale_by_lambda=False``), averaged over samples.

    Args:
        noise: the noise distribution, e.g. ``SumOfGamma(k)`` for states of about ``k``
            ones, as the paper; None means no perturbation: the forward pass is the MAP
            state and the estimator is :class:`BlackboxDifferentiation` (the same numbers).
            None is the default, as in the reference implementation (torch-imle's
            ``noise_distribution=None``), but ``IMLE()`` without a ``noise`` argument
            warns (:class:`NoNoiseWarning`), since the paper's method perturbs; pass
            ``noise=None`` to mean it.
        noise_temperature: tau, the forward noise scale.
        target_noise_temperature: tau', the backward noise scale (default: tau).
        lambda_: lambda, the step towards the target. It multiplies dL/dz, so it depends on
            the loss's reduction: a loss averaged over a batch of B shrinks dL/dz by 1/B. Sum
            the loss over the batch (Adam is invariant to the scale) to keep lambda in score units.
        alpha: alpha = 0 takes the target from the loss alone.
        samples: perturbations per instance (the output gains a sample axis when > 1).
        marginal_samples: MAP states averaged into one marginal estimate per sample.
        scale_by_lambda: divide the gradient by lambda (the default, as the paper's
            analysis); False gives the unscaled difference of one reference implementation.
        two_sided: the central difference
            $\big(\mathrm{MAP}(\alpha\theta + \lambda\,\partial L/\partial z + \tau'\epsilon)
            - \mathrm{MAP}(\alpha\theta - \lambda\,\partial L/\partial z + \tau'\epsilon)\big) / (2\lambda)$
            (PyEPO's ``two_sides=True``): one more solve per sample in the backward pass, a
            gradient that no longer uses the forward state.

    See also: :class:`AIMLE` (adaptive lambda), :class:`STE`.
    """

    noise: NoiseDistribution | None = field(default=_NOISE_NOT_GIVEN, kw_only=False)  # positional, first, as before
    target_noise_temperature: float | None = None
    lambda_: float = 10.0
    alpha: float = 1.0
    scale_by_lambda: bool = True
    two_sided: bool = False

    def __post_init__(self) -> None:
        omitted = self.noise is _NOISE_NOT_GIVEN
        if omitted:
            object.__setattr__(self, "noise", None)
        super().__post_init__()
        if self.target_noise_temperature is not None:
            _check_number("IMLE", "target_noise_temperature", self.target_noise_temperature, low=0.0)
        _check_number("IMLE", "lambda_", self.lambda_, low=0.0, strict=True)
        _check_number("IMLE", "alpha", self.alpha, low=-math.inf)
        for name in ("scale_by_lambda", "two_sided"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidInputError(f"IMLE: {name} must be True or False, got {getattr(self, name)!r}")
        if omitted:  # after the checks: settings refused need no warning besides
            warnings.warn(
                "IMLE() without noise perturbs nothing: its forward pass is the MAP state and its gradient "
                "blackbox differentiation's (Vlastelica et al. 2020). Pass the paper's noise, e.g. "
                "IMLE(noise=ims.SumOfGamma(k=...)) for states of about k ones, or IMLE(noise=None) to mean it "
                "(docs/estimators.md)", NoNoiseWarning, stacklevel=3)

    def max_gradient(self, residuals: Residuals, g: Array, solve: Solve, state: Any) -> tuple[Array, Any]:
        """``(z - MAP(alpha theta - lambda g + tau' eps)) / lambda``, or with ``two_sided``
        ``(MAP(alpha theta + lambda g + tau' eps) - MAP(alpha theta - lambda g + tau' eps)) / (2
        lambda)``, averaged over samples; the state is unchanged."""
        tau = self.noise_temperature if self.target_noise_temperature is None else self.target_noise_temperature
        if self.two_sided:  # both targets in one oracle call (one round trip on a pool): stacked samples
            xp = array_namespace(g)
            targets = xp.concat([self._target(residuals.theta, g, self.lambda_),
                                 self._target(residuals.theta, g, -self.lambda_)], axis=1)
            noise = residuals.noise if residuals.noise is None else xp.concat([residuals.noise] * 2, axis=1)
            states = perturbed_map(solve, targets, noise, tau, scratch=True)
            samples = g.shape[1]
            difference = states[:, :samples, ...] - states[:, samples:, ...]
            difference *= 0.5 / self.lambda_ if self.scale_by_lambda else 0.5
            return mean_over_axis(difference, 1), state
        difference = residuals.z - perturbed_map(solve, self._target(residuals.theta, g, -self.lambda_),
                                                 residuals.noise, tau, scratch=True)
        if self.scale_by_lambda:
            difference *= 1.0 / self.lambda_
        return mean_over_axis(difference, 1), state

    def _target(self, theta: Array, g: Array, step: float) -> Array:
        """``alpha theta + step g`` ``(B, samples, *shape)``, a fresh array. Augmented assignment on
        the fresh temporary: in place for numpy and torch (a buffer fewer on the hot path), a
        plain rebinding for JAX and TensorFlow."""
        target = step * g
        target += theta[:, None, ...] if self.alpha == 1 else self.alpha * theta[:, None, ...]
        return target


class AdaptiveState(NamedTuple):
    """The state of :class:`AIMLE`: one type everywhere, a pytree in JAX (a named tuple).

    Fields are Python numbers as built (``initial_state``, ``from_state_dict``) and 0-d
    arrays of the scores' framework once a backward pass has updated them there, so that
    training never waits on a device to read them; ``state_dict()`` gives plain numbers,
    the form checkpoints hold.

    Attributes:
        beta: the current step multiplier.
        nnz_average: running average of non-zero gradient entries per instance.
        steps: backward passes seen (the first sets the average directly).
    """

    beta: Any
    nnz_average: Any = 0.0
    steps: Any = 0

    def state_dict(self) -> dict[str, float]:
        return {"beta": float(self.beta), "nnz_average": float(self.nnz_average), "steps": int(self.steps)}

    @classmethod
    def from_state_dict(cls, state: dict[str, float]) -> AdaptiveState:
        return cls(beta=float(state["beta"]), nnz_average=float(state["nnz_average"]), steps=int(state["steps"]))


@register
@dataclass(frozen=True, kw_only=True)
class AIMLE(_PerturbAndMAP):
    r"""Adaptive I-MLE (Minervini, Franceschi, Niepert, AAAI 2023).

    Per instance (and sample), $\lambda = \beta\,\lVert\theta\rVert / \lVert\partial L/\partial z\rVert$
    (0, and a zero gradient, where the upstream gradient is zero), and the gradient is
    $(z - z')/\lambda$ with $z' = \mathrm{MAP}(\theta - \lambda g + \epsilon)$, or with
    ``symmetric=True`` $(\mathrm{MAP}(\theta + \lambda g + \epsilon) - \mathrm{MAP}(\theta - \lambda g + \epsilon)) / 2\lambda$.

    After each backward pass, the running average (``decay``) of the number of
    non-zero gradient entries per instance is compared with ``target_nonzeros``:
    ``beta`` grows by ``beta_step`` below it and shrinks above it, never below 0.
    The state is an explicit :class:`AdaptiveState` passed in and returned.

    Args:
        noise, noise_temperature, samples, marginal_samples: as :class:`IMLE`.
        initial_beta: beta before any update.
        beta_step: eta, the change of beta per backward pass (1e-4 to 1e-3 in the paper).
        target_nonzeros: c, the wanted number of non-zero gradient entries per instance.
        decay: the running average's decay.
        symmetric: use the central difference.
    """

    initial_beta: float = 1.0
    beta_step: float = 1e-3
    target_nonzeros: float = 1.0
    decay: float = 0.9
    symmetric: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("initial_beta", "beta_step", "target_nonzeros", "decay"):
            _check_number("AIMLE", name, getattr(self, name), low=0.0)
        if not self.decay < 1:
            raise InvalidInputError(f"AIMLE: decay must be in [0, 1), got {self.decay!r}")

    def initial_state(self) -> AdaptiveState:
        return AdaptiveState(beta=self.initial_beta)

    def max_gradient(
        self, residuals: Residuals, g: Array, solve: Solve, state: AdaptiveState | None
    ) -> tuple[Array, AdaptiveState]:
        """The ``(B, *shape)`` gradient, lambda chosen per instance, and the updated state."""
        state = self.initial_state() if state is None else state
        xp = array_namespace(residuals.theta)
        theta = residuals.theta
        event_ndim = theta.ndim - 1
        lam = self.lambdas(theta, g, state.beta)  # (B, samples)
        lam_b = xp.reshape(lam, (*lam.shape, *(1,) * event_ndim))
        step = lam_b * g
        towards = perturbed_map(solve, theta[:, None, ...] - step, residuals.noise, self.noise_temperature)
        if self.symmetric:
            away = perturbed_map(solve, theta[:, None, ...] + step, residuals.noise, self.noise_temperature)
            difference, divisor = away - towards, 2 * lam_b
        else:
            difference, divisor = residuals.z - towards, lam_b
        safe = xp.where(divisor > 0, divisor, xp.ones_like(divisor))
        per_sample_grad = xp.where(divisor > 0, difference / safe, xp.zeros_like(difference))
        nonzeros = xp.sum(xp.astype(per_sample_grad != 0, theta.dtype), axis=tuple(range(2, per_sample_grad.ndim)))
        return mean_over_axis(per_sample_grad, 1), self.update(state, xp.mean(nonzeros))

    def lambdas(self, theta: Array, g: Array, beta: Any) -> Array:
        """``(B, samples)`` lambda = beta * |theta_b| / |g_bs|, 0 where g_bs = 0."""
        xp = array_namespace(theta)
        event_ndim = theta.ndim - 1
        theta_norm = instance_norm(theta, event_ndim)[:, None]
        g_norm = instance_norm(g, event_ndim)
        safe = xp.where(g_norm > 0, g_norm, xp.ones_like(g_norm))
        beta = xp.asarray(beta, dtype=theta.dtype, device=device(theta))
        return xp.where(g_norm > 0, beta * theta_norm / safe, xp.zeros_like(g_norm))

    def update(self, state: AdaptiveState, nonzeros: Any) -> AdaptiveState:
        """The state after a backward pass whose gradients had ``nonzeros`` non-zero entries per
        instance (a number or a 0-d array; the new fields are 0-d arrays of its framework)."""
        nonzeros = np.asarray(nonzeros) if isinstance(nonzeros, (int, float)) else nonzeros
        xp = array_namespace(nonzeros)
        beta, average, steps, count = (
            xp.asarray(value, dtype=state_float(xp), device=device(nonzeros))
            for value in (state.beta, state.nnz_average, state.steps, nonzeros)
        )
        average = xp.where(steps == 0, count, self.decay * average + (1 - self.decay) * count)
        direction = xp.where(average < self.target_nonzeros, xp.ones_like(average), -xp.ones_like(average))
        beta = beta + direction * self.beta_step
        beta = xp.where(beta > 0, beta, xp.zeros_like(beta))
        return AdaptiveState(beta=beta, nnz_average=average, steps=steps + 1)


@register
@dataclass(frozen=True, kw_only=True)
class STE(_PerturbAndMAP):
    """Straight-through estimator: the forward MAP state, the upstream gradient passed
    back unchanged (negated for a min problem, whose states shrink as costs grow).

    A baseline over the same oracle; ``noise=None`` is the deterministic STE.
    """

    def max_gradient(self, residuals: Residuals, g: Array, solve: Solve, state: Any) -> tuple[Array, Any]:
        return mean_over_axis(g, 1), state


@register
@dataclass(frozen=True, kw_only=True)
class BlackboxDifferentiation(_PerturbAndMAP):
    r"""Blackbox differentiation of combinatorial solvers (Vlastelica, Paulus, Musil,
    Martius, Rolinek, ICLR 2020).

    Forward the MAP state $z = \mathrm{MAP}(\theta)$ (of the perturbed scores
    $\theta + \tau\epsilon$ when ``noise`` is given); backward the gradient of the
    piecewise-linear interpolation of the loss, for a max problem

    $$
    \nabla_\theta L \approx \big(z - \mathrm{MAP}(\theta - \lambda g + \tau\epsilon)\big) / \lambda,
    \qquad g = \partial L / \partial z,
    $$

    averaged over samples. For a min problem over costs $w$ this is the paper's
    $-\big(y(w) - y(w + \lambda g)\big)/\lambda$ (the library solves the max problem
    over $-w$ and turns the gradient back). It is :class:`IMLE` with ``alpha=1``,
    the target's noise that of the forward pass and ``scale_by_lambda=True``: without
    noise, ``BlackboxDifferentiation(lambda_=l)`` and ``IMLE(noise=None, lambda_=l)`` give
    the same numbers.

    Shapes: as every estimator here, ``theta`` ``(B, *shape)``, ``z`` ``(B, *shape)`` or
    ``(B, samples, *shape)``, the gradient ``(B, *shape)``.

    Args:
        noise: None (the default, the paper's deterministic method) or a noise distribution.
        noise_temperature, samples, marginal_samples: as :class:`IMLE`.
        lambda_: lambda > 0, the interpolation's step; like I-MLE's it multiplies dL/dz, so
            it depends on the loss's reduction (the paper uses 1 to 100 for losses summed
            over the batch).
    """

    lambda_: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_number("BlackboxDifferentiation", "lambda_", self.lambda_, low=0.0, strict=True)

    def max_gradient(self, residuals: Residuals, g: Array, solve: Solve, state: Any) -> tuple[Array, Any]:
        """``(z - MAP(theta - lambda g + tau eps)) / lambda``, averaged over samples; the state
        is unchanged. The same operations, in the same order, as :meth:`IMLE.max_gradient`
        at ``alpha=1``, so that the two agree to the last bit."""
        target = (-self.lambda_) * g
        target += residuals.theta[:, None, ...]
        difference = residuals.z - perturbed_map(solve, target, residuals.noise, self.noise_temperature, scratch=True)
        difference *= 1.0 / self.lambda_
        return mean_over_axis(difference, 1), state


@register
@dataclass(frozen=True, kw_only=True)
class NegativeIdentity(_PerturbAndMAP):
    r"""The (negative) identity backward pass (Sahoo, Paulus, Vlastelica, Musil, Kuleshov,
    Martius, "Backpropagation through combinatorial algorithms: identity with projection
    works", ICLR 2023).

    Forward the (perturbed) MAP state; backward the upstream gradient itself: for a max
    problem $\nabla_\theta L \approx \partial L/\partial z$, for a min problem over
    costs $w$, $\nabla_w L \approx -\partial L/\partial z$ (the solver is
    treated as the negative identity of the costs, whose states shrink as costs grow).
    Averaged over samples.

    Relation to :class:`STE`: in this library's sign convention (costs are passed as costs
    and the gradient is turned back on exit) the straight-through estimator already
    passes ``-dL/dz`` back for a min problem, so the two give the same gradient, with or
    without noise; this class names the method of the paper. The paper's projections of
    the scores before the solver (mean removal, normalisation) are not part of it: they
    are layers of the model in front of the solver.

    Args:
        noise, noise_temperature, samples, marginal_samples: as :class:`IMLE`
            (``noise=None``, the default, is the paper's deterministic method).
    """

    def max_gradient(self, residuals: Residuals, g: Array, solve: Solve, state: Any) -> tuple[Array, Any]:
        """``g`` averaged over samples; the state is unchanged."""
        return mean_over_axis(g, 1), state


@register
@dataclass(frozen=True)
class PerturbedOptimizer(_PerturbAndMAP):
    r"""Perturbed optimizers (Berthet, Blondel, Teboul, Cuturi, Vert, Bach, NeurIPS 2020).

    Forward the Monte Carlo estimate of the perturbed optimizer of a max problem,

    $$
    y_\sigma(\theta) = \mathbb{E}\,\mathrm{MAP}(\theta + \sigma Z)
    \approx \frac{1}{M}\sum_{m=1}^{M} y_m, \qquad y_m = \mathrm{MAP}(\theta + \sigma Z_m),
    $$

    a smooth function of $\theta$ (with entries in the convex hull of the states);
    backward its Jacobian's estimate from the same draws, for $Z$ of density
    $\propto e^{-\nu(Z)}$:

    $$
    \nabla_\theta L \approx \frac{1}{M\sigma}\sum_{m=1}^{M} \langle y_m, g\rangle\, \nabla\nu(Z_m),
    \qquad g = \partial L / \partial y_\sigma,
    $$

    with $\nabla\nu(Z) = Z$ for ``Normal()`` noise and $1 - e^{-Z}$ for
    ``Gumbel()`` noise. It costs no solver call: the backward pass reuses the forward
    pass's states. With Gumbel noise on a one-hot problem, $y_\sigma(\theta)$ is
    exactly $\mathrm{softmax}(\theta/\sigma)$.

    ``multiplicative=True`` perturbs multiplicatively (InferOpt's ``PerturbedMultiplicative``),
    keeping the signs of the scores, e.g. positive costs positive:
    $y_m = \mathrm{MAP}(\theta \odot e^{\sigma Z_m - \sigma^2/2})$ (the shift makes the
    factor's mean 1 for Normal noise). As $|\theta_i| e^{\sigma Z_i - \sigma^2/2} =
    \exp(\log|\theta_i| - \sigma^2/2 + \sigma Z_i)$ is an additive perturbation of
    $u_i = \log|\theta_i|$, and $\partial u_i / \partial \theta_i = 1/\theta_i$,
    the chain rule gives

    $$
    \nabla_\theta L \approx \frac{1}{M\sigma\,\theta}\odot\sum_{m=1}^{M} \langle y_m, g\rangle\, \nabla\nu(Z_m)
    $$

    (entries where $\theta_i = 0$, which no multiplicative perturbation moves, get 0).

    ``variance_reduction=True`` (the default, as PyEPO's ``perturbedOpt``) subtracts from
    each draw's weight $\langle y_m, g\rangle$ the mean of the other $M - 1$
    draws' weights (a leave-one-out baseline),

    $$
    \langle y_m, g\rangle \;\to\; \frac{M}{M-1}\Big(\langle y_m, g\rangle
    - \frac1M\sum_{j}\langle y_j, g\rangle\Big),
    $$

    which keeps the estimate unbiased (the baseline is independent of $Z_m$, and
    $\mathbb{E}\,\nabla\nu(Z) = 0$ for both noises) and removes the variance that
    a large $\langle y, g\rangle$ common to all draws causes. With ``M = 1`` there
    is no other draw and nothing changes; ``variance_reduction=False`` is Berthet et
    al.'s plain estimate.

    For a min problem over costs $w$ the library solves the max problem over
    $-w$: the states are $\mathrm{MAP}_{\min}(w - \sigma Z_m)$ (additive; for
    Normal noise the same law as $w + \sigma Z_m$) or
    $\mathrm{MAP}_{\min}(w \odot e^{\sigma Z_m - \sigma^2/2})$ (multiplicative), and the
    gradient is turned back on exit.

    Relation to I-MLE: both perturb and solve; I-MLE's backward pass solves again at a
    target moved along $-g$ (a finite difference, biased, low variance), this one
    weights the forward states by the noise's score (unbiased for the smoothed map
    $y_\sigma$, no extra solve, variance growing as $1/\sigma$, so it wants
    more samples ``M``).

    Shapes: ``theta`` ``(B, *shape)``; the output ``(B, *shape)``, the mean of M states
    per instance, or ``(B, samples, *shape)`` with ``samples > 1`` independent such means;
    the gradient ``(B, *shape)``, averaged over samples. The residuals
    (:class:`PerturbedResiduals`) keep the ``(B, samples, M, *shape)`` individual states.

    Args:
        noise: ``Normal()`` (the default) or ``Gumbel()``; the estimate needs the noise's
            density, so no other distribution (and not None) is taken.
        noise_temperature: sigma > 0, the perturbation's scale (the smoothing).
        marginal_samples: M, the perturbations averaged into one output (the paper's
            ``num_samples``).
        samples: independent outputs per instance, each the mean of M states.
        multiplicative: perturb multiplicatively, as above.
        variance_reduction: the leave-one-out baseline, as above.
    """

    noise: NoiseDistribution | None = Normal()  # noqa: RUF009  (a frozen, immutable default)
    _: KW_ONLY
    multiplicative: bool = False
    variance_reduction: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.noise, (Normal, Gumbel)):
            raise InvalidInputError(
                f"PerturbedOptimizer: noise must be Normal() or Gumbel() (the gradient estimate needs the "
                f"noise's density), got {self.noise!r}"
            )
        _check_number("PerturbedOptimizer", "noise_temperature", self.noise_temperature, low=0.0, strict=True)
        for name in ("multiplicative", "variance_reduction"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidInputError(f"PerturbedOptimizer: {name} must be True or False, got {getattr(self, name)!r}")

    def sample_with(
        self, theta: Array, noise: Array | None, solve: Solve, *, sign: int
    ) -> tuple[Array, PerturbedResiduals]:
        """Forward pass with a given noise draw ``(B, samples, M, *shape)``: the mean of the M
        perturbed states, and residuals that keep them all."""
        if noise is None:
            raise InvalidInputError("PerturbedOptimizer: the forward pass needs a noise draw, got None")
        scores = theta if sign == 1 else -theta
        perturbed = perturb(scores[:, None, None, ...], noise, self.noise_temperature, self.multiplicative)
        event = tuple(theta.shape[1:])
        states = reshape(oriented(solve, sign)(reshape(perturbed, (-1, *event))), perturbed.shape)
        z = mean_over_axis(states, 2)
        return output(z, self.samples), PerturbedResiduals(theta=scores, noise=noise, z=z, sign=sign, states=states)

    def max_gradient(self, residuals: Residuals, g: Array, solve: Solve, state: Any) -> tuple[Array, Any]:
        """``mean_m <y_m, g> grad_nu(Z_m) / sigma`` (divided by theta when multiplicative,
        with the leave-one-out baseline when ``variance_reduction``), averaged over samples;
        no solver call, the state unchanged. ``residuals`` are the :class:`PerturbedResiduals`
        of :meth:`sample_with`."""
        if not isinstance(residuals, PerturbedResiduals):
            raise InvalidInputError(
                f"PerturbedOptimizer: the backward pass needs the PerturbedResiduals of its forward pass, got "
                f"{type(residuals).__name__}"
            )
        xp = array_namespace(residuals.theta)
        states, noise = residuals.states, residuals.noise
        event_axes = tuple(range(3, states.ndim))
        inner = xp.sum(states * g[:, :, None, ...], axis=event_axes, keepdims=True)  # (B, samples, M, 1, ...)
        m = states.shape[2]
        if self.variance_reduction and m > 1:
            inner = (inner - xp.mean(inner, axis=2, keepdims=True)) * (m / (m - 1))
        score = noise if isinstance(self.noise, Normal) else 1.0 - xp.exp(-noise)
        grad = mean_over_axis(inner * score, 2) * (1.0 / self.noise_temperature)  # (B, samples, *shape)
        if self.multiplicative:
            theta = residuals.theta[:, None, ...]
            nonzero = theta != 0
            grad = xp.where(nonzero, grad / xp.where(nonzero, theta, xp.ones_like(theta)), xp.zeros_like(grad))
        return mean_over_axis(grad, 1), state


__all__ = [
    "Estimator",
    "Residuals",
    "PerturbedResiduals",
    "IMLE",
    "AIMLE",
    "AdaptiveState",
    "STE",
    "BlackboxDifferentiation",
    "NegativeIdentity",
    "PerturbedOptimizer",
    "oriented",
    "perturbed_map",
    "multiplicative_factor",
    "perturb",
    "draw_noise",
]
