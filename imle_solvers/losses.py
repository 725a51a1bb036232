r"""Losses over a MAP oracle, framework-free: the perturbed Fenchel-Young loss, SPO+ and the structured SVM.

Each loss is written once here, on array-API arrays (numpy, torch, JAX, TensorFlow through
:mod:`imle_solvers.frameworks.tensorflow_namespace`), with every input explicit; the bindings
(``imle_solvers.torch``, ``.jax``, ``.tensorflow``) only wrap them in their autograd:

- :func:`fenchel_young`: ``(theta, y_true, noise, solve) -> (value, gradient, solution)``;
- :func:`spo_plus`: ``(c_hat, c, solve) -> (value, gradient, solution)``;
- :func:`structured_svm`: ``(theta, y_true, solve) -> (value, gradient, solution)``.

Each returns a :class:`LossValue`: ``value`` ``(B,)`` (one per instance), ``gradient``
``(B, *shape)`` its gradient (a subgradient for SPO+) with respect to the prediction, and
``solution`` ``(B, *shape)``, the state it used. ``solve`` is the problem's own
batched oracle ``(N, *shape) -> (N, *shape)`` (costs for a min problem), each row solved
with its instance's data (the bindings wrap it with
:func:`imle_solvers.instances.per_instance`); ``sign`` is +1 for a max problem, -1 for a
min problem. As in :mod:`imle_solvers.estimators`, the formulas are written for the max
problem over ``s = sign * theta`` and the gradient is turned back on exit.

Perturbed Fenchel-Young loss (Berthet et al., 2020), max problem over scores ``s``:

.. math:: \ell(s, y) = F_\sigma(s) - \langle s, y\rangle \;(+\,\Omega(y)),
    \qquad F_\sigma(s) = \mathbb{E}\max_{y'}\langle y', s + \sigma Z\rangle
    \approx \frac1M\sum_m \langle y_m, s + \sigma Z_m\rangle,

``y_m = MAP(s + sigma Z_m)``, with gradient ``mean_m y_m - y``. ``Omega(y)`` does not
depend on ``s`` and is left out (the value is the loss up to a per-instance constant).
For a min problem over costs ``w`` (``s = -w``): ``y_m = MAP_min(w - sigma Z_m)`` and the
gradient with respect to ``w`` is ``y - mean_m y_m`` (PyEPO's ``perturbedFenchelYoung``).

Multiplicative perturbation (``multiplicative=True``; InferOpt's ``PerturbedMultiplicative``,
PyEPO's ``perturbedFenchelYoungMul``), for scores (costs) whose signs must be kept: with
the factors ``f_m = exp(sigma Z_m - sigma^2/2)`` (of mean 1 for Normal draws),

.. math:: y_m = \mathrm{MAP}(s \odot f_m), \qquad
    \ell(s, y) = \frac1M\sum_m \langle y_m, s \odot f_m\rangle - \langle s, y\rangle,
    \qquad \nabla_s\ell = \frac1M\sum_m f_m \odot y_m - y,

the gradient being that of the value for the given draws (Danskin), as PyEPO's. For a min
problem: ``y_m = MAP_min(w * f_m)``, gradient ``y - mean_m f_m * y_m`` with respect to ``w``.

SPO+ (Elmachtoub and Grigas, 2022), min problem over costs, prediction ``c_hat``, true
costs ``c`` with optimum ``w*(c)`` and value ``z*(c)``:

.. math:: \ell(\hat c, c) = -\min_w\langle 2\hat c - c, w\rangle + 2\langle \hat c, w^*(c)\rangle - z^*(c),
    \qquad \partial_{\hat c}\ell \ni 2\,\big(w^*(c) - w^*(2\hat c - c)\big).

For a max problem over scores (``c = -theta``) the same loss reads
``max_w <2 theta_hat - theta, w> - 2 <theta_hat, w*(theta)> + z*(theta)`` with
subgradient ``2 (w*(2 theta_hat - theta) - w*(theta))``. It is >= 0, and 0 at
``c_hat = c``.

Structured SVM (Tsochantaridis et al., 2005; InferOpt's ``StructuredSVMLoss``), max problem
over scores ``s``, target structure ``y``, a loss ``Delta`` linear in the state
(``Delta(y') = <a, y'> + b``) weighted by ``alpha``:

.. math:: \ell(s, y) = \max_{y'}\big[\langle s, y'\rangle + \alpha\,\Delta(y', y)\big] - \langle s, y\rangle,
    \qquad \nabla_s\ell = \hat y - y, \quad \hat y = \mathrm{MAP}(s + \alpha a),

one MAP call on the loss-augmented scores. The Hamming loss of 0/1 states,
``sum_i |y'_i - y_i|``, is ``<y', 1 - 2 y> + |y|`` (``a = 1 - 2 y``, ``b = |y|``). For a
min problem over costs ``w`` (``s = -w``): ``y_hat = MAP_min(w - alpha a)`` and the gradient
with respect to ``w`` is ``y - y_hat``.

Failure policy (``on_failure`` of the bindings' losses, see :mod:`imle_solvers.failures`):
:func:`under_policy` runs a loss's solves through the same
:class:`~imle_solvers.failures.StatusLog` as the layers; an instance FAILED in any of its
solves (a PFYL's perturbed solves, SPO+'s solves of ``c`` and ``2 c_hat - c``) gets value
0 and gradient 0, the others what they get in a batch without it; an INCUMBENT instance's
loss is computed from the incumbent state as if it were optimal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from ._array import Array, array_namespace
from .errors import InvalidInputError
from .estimators import PerturbedOptimizer, Solve, check_perturbations, multiplicative_factor, oriented, perturb
from .failures import SolveWithStatus, StatusLog, batch_size, zero_failed_rows

__all__ = [
    "REDUCTIONS",
    "FenchelYoung",
    "LossDefinition",
    "SPOPlus",
    "LossValue",
    "check_reduction",
    "fenchel_young",
    "perturbation",
    "StructuredSVM",
    "reduce",
    "spo_plus",
    "structured_svm",
    "under_policy",
]

REDUCTIONS = ("mean", "sum", "none")


def perturbation(noise: Any, sigma: float, samples: int, multiplicative: bool = False) -> PerturbedOptimizer:
    """The perturbed optimizer whose draws and states a Fenchel-Young loss uses: ``noise``
    (None: ``Normal()``) at scale ``sigma``, ``samples`` perturbations per instance,
    additive or ``multiplicative``; its constructor checks the settings (``samples`` here,
    by the loss's name for it)."""
    from .noise import Normal

    check_perturbations("FenchelYoungLoss", samples=samples)
    return PerturbedOptimizer(Normal() if noise is None else noise, noise_temperature=sigma,
                              marginal_samples=samples, multiplicative=multiplicative)


class LossValue(NamedTuple):
    """A loss's values ``(B,)``, their gradient ``(B, *shape)`` with respect to the
    prediction, and the solution it used (PFYL: the perturbed mean ``y_sigma``; SPO+:
    ``w*(2 c_hat - c)``), ``(B, *shape)``."""

    value: Array
    gradient: Array
    solution: Array


def _inner(a: Array, b: Array, event_ndim: int) -> Array:
    """``<a, b>`` over the last ``event_ndim`` axes."""
    xp = array_namespace(a)
    return xp.sum(a * b, axis=tuple(range(a.ndim - event_ndim, a.ndim)))


def _check_same_shape(owner: str, name: str, x: Array, like: Array) -> None:
    if tuple(x.shape) != tuple(like.shape):
        raise InvalidInputError(f"{owner}: {name} must have the prediction's shape {tuple(like.shape)}, got {tuple(x.shape)}")


def fenchel_young(
    theta: Array, y_true: Array, noise: Array, solve: Solve, *, sign: int, sigma: float, multiplicative: bool = False
) -> LossValue:
    """The perturbed Fenchel-Young loss per instance and its gradient (see the module docstring).

    Args:
        theta: ``(B, *shape)`` the prediction (scores, or costs for a min problem).
        y_true: ``(B, *shape)`` the observed structures.
        noise: ``(B, ..., *shape)`` the draws ``Z``; all axes between the batch and the event
            are samples (e.g. ``(B, 1, M, *shape)``, :meth:`PerturbedOptimizer.draw`'s).
        solve: the problem's own oracle (see the module docstring).
        sign: +1 max problem, -1 min problem.
        sigma: the perturbation's scale, > 0.
        multiplicative: perturb ``s * exp(sigma Z - sigma^2/2)`` rather than ``s + sigma Z``;
            the value is then ``mean_m <y_m, s * f_m> - <s, y_true>`` and the gradient
            ``mean_m f_m * y_m - y_true`` (PyEPO's ``perturbedFenchelYoungMul``).

    The solution returned is the mean state ``mean_m y_m`` in both cases.
    """
    xp = array_namespace(theta)
    _check_same_shape("FenchelYoungLoss", "y_true", y_true, theta)
    event = tuple(theta.shape[1:])
    batch = batch_size(theta)
    noise = xp.reshape(noise, (batch, -1, *event))  # (B, M, *shape)
    s = theta if sign == 1 else -theta
    perturbed = perturb(s[:, None, ...], noise, sigma, multiplicative)
    factor = multiplicative_factor(noise, sigma) if multiplicative else None
    states = xp.reshape(oriented(solve, sign)(xp.reshape(perturbed, (-1, *event))), perturbed.shape)
    event_ndim = len(event)
    f_sigma = xp.mean(_inner(states, perturbed, event_ndim), axis=1)
    y_true = xp.astype(y_true, theta.dtype)
    value = f_sigma - _inner(s, y_true, event_ndim)
    mean_state = xp.mean(states, axis=1)
    # d/ds <y_m, s * f_m> = f_m * y_m: the gradient of the value for these draws
    grad = (mean_state if factor is None else xp.mean(factor * states, axis=1)) - y_true
    return LossValue(value, grad if sign == 1 else -grad, mean_state)


def spo_plus(
    c_hat: Array, c: Array, solve: Solve, *, sign: int, w_true: Array | None = None, z_true: Array | None = None
) -> LossValue:
    """SPO+ per instance and its subgradient with respect to ``c_hat`` (see the module docstring).

    Args:
        c_hat: ``(B, *shape)`` the prediction, in the problem's own sense (costs for a min
            problem, scores for a max problem).
        c: ``(B, *shape)`` the true costs (scores).
        solve: the problem's own oracle.
        sign: +1 max problem, -1 min problem.
        w_true: ``(B, *shape)`` an optimal solution for ``c``; solved for when None.
        z_true: ``(B,)`` its objective value ``<c, w_true>``, in the problem's own sense;
            computed from ``w_true`` when None.
    """
    xp = array_namespace(c_hat)
    _check_same_shape("SPOPlusLoss", "c", c, c_hat)
    event_ndim = c_hat.ndim - 1
    c = xp.astype(c, c_hat.dtype)
    if w_true is None:
        w_true = solve(c)
    else:
        _check_same_shape("SPOPlusLoss", "w_true", w_true, c_hat)
    w_true = xp.astype(w_true, c_hat.dtype)
    s_hat = c_hat if sign == 1 else -c_hat
    s = c if sign == 1 else -c
    z_max = _inner(s, w_true, event_ndim) if z_true is None else sign * xp.astype(z_true, c_hat.dtype)
    target = 2 * s_hat - s
    w_tilde = oriented(solve, sign)(target)
    value = _inner(target, w_tilde, event_ndim) - 2 * _inner(s_hat, w_true, event_ndim) + z_max
    grad = 2 * (w_tilde - w_true)
    return LossValue(value, grad if sign == 1 else -grad, w_tilde)


@dataclass(frozen=True)
class FenchelYoung:
    """The perturbed Fenchel-Young loss (Berthet et al., 2020) as the bindings' losses run it
    (:func:`fenchel_young`); its target is ``y_true``, the observed structures.

    The bindings' ``FenchelYoungLoss(problem, noise=None, sigma=1.0, samples=1,
    reduction="mean", multiplicative=False, **options)`` build it from:

    - ``noise``: ``Normal()`` (None) or ``Gumbel()``; ``sigma``: the perturbation's scale,
      > 0; ``samples``: M, perturbations per instance; ``multiplicative``: perturb
      ``theta * exp(sigma Z - sigma^2/2)``, keeping the scores' signs (PyEPO's
      ``perturbedFenchelYoungMul``; the gradient is then ``mean_m f_m * y_m - y_true``);
    - ``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` for ``(B,)`` (Keras: its own);
    - ``**options``: ``validate_args`` and the options of the layers
      (:class:`~imle_solvers.options.OracleOptions`, :class:`~imle_solvers.options.NoiseOptions`).
      ``on_failure="raise"`` names the failing instance's batch index; under ``"skip"``
      (and ``"incumbent"`` without an incumbent) an instance whose perturbed solves fail
      adds 0 to the loss and gets gradient 0 (a mean still divides by ``B``); ``failures``
      counts them.

    The gradient with respect to ``theta`` is ``y_sigma(theta) - y_true`` for a max problem
    and ``y_true - y_sigma(w)`` for a min problem over costs ``w``.

    Attributes:
        perturbation: the perturbed optimizer whose noise, scale, samples (M) and
            additive or multiplicative perturbation the loss uses (:func:`perturbation`).
    """

    perturbation: PerturbedOptimizer
    targets: ClassVar[tuple[str, ...]] = ("y_true",)

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Array, solve: Solve, sign: int) -> LossValue:
        p = self.perturbation
        return fenchel_young(prediction, targets["y_true"], noise, solve, sign=sign, sigma=p.noise_temperature,
                             multiplicative=p.multiplicative)


@dataclass(frozen=True)
class SPOPlus:
    """SPO+ (Elmachtoub and Grigas) as the bindings' losses run it (:func:`spo_plus`): no
    noise; its targets are the true costs ``c`` ``(B, *shape)`` and, optionally, an optimal
    solution ``w_true`` ``(B, *shape)`` for them (else solved for) and its value ``z_true``
    ``(B,)``. The bindings' ``SPOPlusLoss(problem, reduction="mean", **options)`` take the
    options of :class:`FenchelYoung` but the noise's; under ``on_failure="skip"`` an
    instance whose solve of ``c`` or of ``2 c_hat - c`` fails adds 0 and gets gradient 0.
    The subgradient with respect to ``c_hat`` is ``2 (w*(c) - w*(2 c_hat - c))`` for a min
    problem, mirrored for a max problem."""

    perturbation: ClassVar[None] = None
    targets: ClassVar[tuple[str, ...]] = ("c", "w_true", "z_true")

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        return spo_plus(prediction, targets["c"], solve, sign=sign, w_true=targets.get("w_true"),
                        z_true=targets.get("z_true"))


def structured_svm(
    theta: Array,
    y_true: Array,
    solve: Solve,
    *,
    sign: int,
    alpha: float = 1.0,
    delta_weight: Array | None = None,
    delta_constant: Array | None = None,
) -> LossValue:
    """The structured SVM loss per instance and its subgradient (see the module docstring).

    Args:
        theta: ``(B, *shape)`` the prediction (scores, or costs for a min problem).
        y_true: ``(B, *shape)`` the target structures.
        solve: the problem's own oracle.
        sign: +1 max problem, -1 min problem.
        alpha: the weight of ``Delta`` (the margin's scale), >= 0.
        delta_weight: ``(B, *shape)`` ``a`` of a user's loss ``Delta(y') = <a, y'> + b``;
            None: the Hamming loss of 0/1 states (``a = 1 - 2 y_true``, ``b = |y_true|``).
        delta_constant: ``(B,)`` its ``b``; None with a ``delta_weight``: ``-<a, y_true>``,
            so that ``Delta(y_true) = 0`` (the loss is then >= 0).

    The solution returned is the loss-augmented MAP state ``y_hat``.
    """
    xp = array_namespace(theta)
    _check_same_shape("StructuredSVMLoss", "y_true", y_true, theta)
    event_ndim = theta.ndim - 1
    y_true = xp.astype(y_true, theta.dtype)
    if delta_weight is None:
        weight = 1 - 2 * y_true
        constant = _inner(y_true, xp.ones_like(y_true), event_ndim)
    else:
        _check_same_shape("StructuredSVMLoss", "delta_weight", delta_weight, theta)
        weight = xp.astype(delta_weight, theta.dtype)
        constant = -_inner(weight, y_true, event_ndim) if delta_constant is None else xp.astype(delta_constant, theta.dtype)
    s = theta if sign == 1 else -theta
    augmented = s + alpha * weight
    y_hat = xp.astype(oriented(solve, sign)(augmented), theta.dtype)
    value = _inner(augmented, y_hat, event_ndim) + alpha * constant - _inner(s, y_true, event_ndim)
    grad = y_hat - y_true
    return LossValue(value, grad if sign == 1 else -grad, y_hat)


@dataclass(frozen=True)
class StructuredSVM:
    """The structured SVM loss (Tsochantaridis et al., 2005; InferOpt's ``StructuredSVMLoss``)
    as the bindings' losses run it (:func:`structured_svm`): no noise; its targets are the
    structures ``y_true`` ``(B, *shape)`` and, optionally, a user's loss linear in the state,
    ``Delta(y') = <delta_weight, y'> + delta_constant`` (``delta_weight`` ``(B, *shape)``,
    ``delta_constant`` ``(B,)``, default ``-<delta_weight, y_true>``); without them, the
    Hamming loss of 0/1 states. A loss that is not linear in the state (e.g. a squared
    distance of general integers) would need a loss-augmented solver and is not supported.

    The bindings' ``StructuredSVMLoss(problem, alpha=1.0, reduction="mean", **options)``
    take the options of :class:`SPOPlus`; under ``on_failure="skip"`` an instance whose
    loss-augmented solve fails adds 0 and gets gradient 0. One solve per instance and call.
    The subgradient with respect to the scores is ``y_hat - y_true``, ``y_hat`` the MAP state
    of ``theta + alpha * delta_weight``; for a min problem over costs ``w`` it is
    ``y_true - y_hat``, ``y_hat = MAP_min(w - alpha * delta_weight)``.

    Attributes:
        alpha: the weight of ``Delta``, >= 0 (0: the perceptron loss, ``max <s, y'> - <s, y>``).
    """

    alpha: float = 1.0
    perturbation: ClassVar[None] = None
    targets: ClassVar[tuple[str, ...]] = ("y_true", "delta_weight", "delta_constant")

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha >= 0:
            raise InvalidInputError(f"StructuredSVMLoss: alpha must be a number >= 0, got {self.alpha!r}")

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        return structured_svm(prediction, targets["y_true"], solve, sign=sign, alpha=float(self.alpha),
                              delta_weight=targets.get("delta_weight"), delta_constant=targets.get("delta_constant"))


LossDefinition = FenchelYoung | SPOPlus | StructuredSVM


def under_policy(
    compute: Callable[[Solve], LossValue],
    prediction: Array,
    solve: Solve,
    solve_with_status: SolveWithStatus,
    on_failure: str,
) -> LossValue:
    """``compute(solve)`` (a loss of ``prediction`` ``(B, *shape)`` over the solve it is
    given) under the oracle's failure policy ``on_failure``.

    ``"raise"``: ``compute(solve)`` itself (a failed solve raises, naming its instance).
    Otherwise the loss solves through a :class:`~imle_solvers.failures.StatusLog` over
    ``solve_with_status``, the layers' mechanism, and the value, gradient and solution
    rows of every instance FAILED in any of its solves are zero: such an instance adds 0
    to the loss and its gradient is 0 (a mean over the batch still divides by ``B``)."""
    if on_failure == "raise":
        return compute(solve)
    log = StatusLog(solve_with_status, prediction)
    result = compute(log)
    status = log.worst(prediction)
    return LossValue(*(zero_failed_rows(x, status) for x in result))


def check_reduction(owner: str, reduction: Any) -> str:
    """``reduction`` if it is one of :data:`REDUCTIONS`; else an error saying so."""
    if reduction not in REDUCTIONS:
        raise InvalidInputError(f"{owner}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def reduce(values: Array, reduction: str) -> Array:
    """Per-instance ``values`` ``(B,)`` reduced: their mean, sum, or themselves (``"none"``)."""
    if reduction == "none":
        return values
    xp = array_namespace(values)
    return xp.mean(values) if reduction == "mean" else xp.sum(values)
