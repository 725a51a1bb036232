r"""Losses over a MAP oracle, framework-free: the perturbed Fenchel-Young loss, SPO+, the structured SVM, PG,
the regularized (Frank-Wolfe) Fenchel-Young loss and CaVE.

Each loss is written once here, on array-API arrays (numpy, torch, JAX, TensorFlow through
:mod:`imle_solvers.frameworks.tensorflow_namespace`), with every input explicit; the bindings
(``imle_solvers.torch``, ``.jax``, ``.tensorflow``) only wrap them in their autograd:

- :func:`fenchel_young`: ``(theta, y_true, noise, solve) -> (value, gradient, solution)``;
- :func:`spo_plus`: ``(c_hat, c, solve) -> (value, gradient, solution)``;
- :func:`structured_svm`: ``(theta, y_true, solve) -> (value, gradient, solution)``;
- :func:`perturbation_gradient`: ``(c_hat, c, solve) -> (value, gradient, solution)``;
- :func:`regularized_fenchel_young`: ``(theta, y_true, solve) -> (value, gradient, solution)``;
- :func:`cone_aligned_cosine`: ``(c_hat, tight_ctrs, project) -> (value, gradient, solution)``.

Each returns a :class:`LossValue`: ``value`` ``(B,)`` (one per instance), ``gradient``
``(B, *shape)`` its gradient (a subgradient for SPO+) with respect to the prediction, and
``solution`` ``(B, *shape)``, the state it used. ``solve`` is the problem's own
batched oracle ``(N, *shape) -> (N, *shape)`` (costs for a min problem), each row solved
with its instance's data (the bindings wrap it with
:func:`imle_solvers.instances.per_instance`); ``sign`` is +1 for a max problem, -1 for a
min problem. As in :mod:`imle_solvers.estimators`, the formulas are written for the max
problem over ``s = sign * theta`` and the gradient is turned back on exit.

Perturbed Fenchel-Young loss (Berthet et al., 2020), max problem over scores ``s``:

$$
\begin{gathered}
\ell(s, y) = F_\sigma(s) - \langle s, y\rangle \;(+\,\Omega(y)), \\
F_\sigma(s) = \mathbb{E}\max_{y'}\langle y', s + \sigma Z\rangle
\approx \frac1M\sum_m \langle y_m, s + \sigma Z_m\rangle,
\end{gathered}
$$

``y_m = MAP(s + sigma Z_m)``, with gradient ``mean_m y_m - y``. ``Omega(y)`` does not
depend on ``s`` and is left out (the value is the loss up to a per-instance constant).
For a min problem over costs ``w`` (``s = -w``): ``y_m = MAP_min(w - sigma Z_m)`` and the
gradient with respect to ``w`` is ``y - mean_m y_m`` (PyEPO's ``perturbedFenchelYoung``).

Multiplicative perturbation (``multiplicative=True``; InferOpt's ``PerturbedMultiplicative``,
PyEPO's ``perturbedFenchelYoungMul``), for scores (costs) whose signs must be kept: with
the factors ``f_m = exp(sigma Z_m - sigma^2/2)`` (of mean 1 for Normal draws),

$$
\begin{gathered}
y_m = \mathrm{MAP}(s \odot f_m), \qquad
\ell(s, y) = \frac1M\sum_m \langle y_m, s \odot f_m\rangle - \langle s, y\rangle, \\
\nabla_s\ell = \frac1M\sum_m f_m \odot y_m - y,
\end{gathered}
$$

the gradient being that of the value for the given draws (Danskin), as PyEPO's. For a min
problem: ``y_m = MAP_min(w * f_m)``, gradient ``y - mean_m f_m * y_m`` with respect to ``w``.

SPO+ (Elmachtoub and Grigas, 2022), min problem over costs, prediction ``c_hat``, true
costs ``c`` with optimum ``w*(c)`` and value ``z*(c)``:

$$
\begin{gathered}
\ell(\hat c, c) = -\min_w\langle 2\hat c - c, w\rangle + 2\langle \hat c, w^*(c)\rangle - z^*(c), \\
\partial_{\hat c}\ell \ni 2\,\big(w^*(c) - w^*(2\hat c - c)\big).
\end{gathered}
$$

For a max problem over scores (``c = -theta``) the same loss reads
``max_w <2 theta_hat - theta, w> - 2 <theta_hat, w*(theta)> + z*(theta)`` with
subgradient ``2 (w*(2 theta_hat - theta) - w*(theta))``. It is >= 0, and 0 at
``c_hat = c``.

Structured SVM (Tsochantaridis et al., 2005; InferOpt's ``StructuredSVMLoss``), max problem
over scores ``s``, target structure ``y``, a loss ``Delta`` linear in the state
(``Delta(y') = <a, y'> + b``) weighted by ``alpha``:

$$
\begin{gathered}
\ell(s, y) = \max_{y'}\big[\langle s, y'\rangle + \alpha\,\Delta(y', y)\big] - \langle s, y\rangle, \\
\nabla_s\ell = \hat y - y, \quad \hat y = \mathrm{MAP}(s + \alpha a),
\end{gathered}
$$

one MAP call on the loss-augmented scores. The Hamming loss of 0/1 states,
``sum_i |y'_i - y_i|``, is ``<y', 1 - 2 y> + |y|`` (``a = 1 - 2 y``, ``b = |y|``). For a
min problem over costs ``w`` (``s = -w``): ``y_hat = MAP_min(w - alpha a)`` and the gradient
with respect to ``w`` is ``y - y_hat``.

Perturbation gradient (PG; Huang and Gupta, 2024; PyEPO's ``perturbationGradient``), max
problem over the predicted scores ``s_hat`` and the true scores ``s``, ``V(x) = max_y <x, y>``
and ``h = sigma`` the finite difference's width: a finite difference of ``V`` along ``-s``,
which approximates the true objective's loss ``-<s, MAP(s_hat)>`` of the decision,

$$
\begin{gathered}
\ell_{B}(\hat s, s) = \frac{V(\hat s - h s) - V(\hat s)}{h}, \quad
\nabla_{\hat s}\ell_{B} = \frac{y_- - y}{h}, \\
\ell_{C}(\hat s, s) = \frac{V(\hat s - h s) - V(\hat s + h s)}{2h}, \quad
\nabla_{\hat s}\ell_{C} = \frac{y_- - y_+}{2h},
\end{gathered}
$$

``y = MAP(s_hat)``, ``y_+- = MAP(s_hat +- h s)``: the backward difference (PGB, two solves
per instance) and the central one (PGC, two solves). For a min problem over costs (``c_hat``,
``c``) the backward loss reads ``(z*(c_hat) - z*(c_hat - h c)) / h``, ``z*`` the minimum, with
gradient ``(w*(c_hat) - w*(c_hat - h c)) / h``; the central one
``(z*(c_hat + h c) - z*(c_hat - h c)) / (2h)``, gradient ``(w*(c_hat + h c) - w*(c_hat - h c)) / (2h)``.
The gradient is that of the value for the solved states (Danskin); it needs no true
solution, only the true costs.

Fenchel-Young loss of the quadratic regularizer (Dalle et al., 2022; InferOpt's
``FenchelYoungLoss`` of a ``RegularizedFrankWolfe``, PyEPO's
``regularizedFrankWolfeFenchelYoung``), max problem over scores ``s``, ``Omega(mu) =
lambda/2 ||mu||^2`` on the states' convex hull, the regularized solution ``y_lambda(s)``
(:func:`imle_solvers.frank_wolfe.regularized_map`, away-step Frank-Wolfe over the oracle):

$$
\begin{gathered}
\ell(s, y) = \langle s, \hat y_\lambda\rangle - \frac{\lambda}{2}\|\hat y_\lambda\|^2
+ \frac{\lambda}{2}\|y\|^2 - \langle s, y\rangle, \quad
\nabla_s\ell = \hat y_\lambda(s) - y.
\end{gathered}
$$

It is >= 0, and 0 when ``y = y_lambda(s)``. For a min problem over costs ``w`` (``s = -w``)
the gradient with respect to ``w`` is ``y - y_lambda(-w)``, PyEPO's value for value.

Cone-aligned vector estimation (CaVE; Tang and Khalil, 2024; PyEPO's ``coneAlignedCosine``),
max problem over the predicted scores ``s_hat`` (``-c_hat`` for a min problem), ``A`` ``(R, n)``
the normals, in ``<=`` orientation, of the constraints binding at the instance's true
solution, ``p = Pi_K(s_hat)`` the projection onto their cone ``K = {A^T lam : lam >= 0}``
(:mod:`imle_solvers.cone`), held fixed:

$$
\begin{gathered}
\ell(\hat s, A) = 1 - \frac{\langle \hat s, p\rangle}{\|\hat s\|\,\|p\|}, \quad
\nabla_{\hat s}\ell = -\frac{p}{\|\hat s\|\,\|p\|}
+ \frac{\langle \hat s, p\rangle}{\|\hat s\|^3\,\|p\|}\,\hat s,
\end{gathered}
$$

0 when ``s_hat`` lies in the cone (the true solution is then optimal for ``s_hat``'s linear
relaxation), and ``1`` with gradient 0 where ``p = 0``. No solve; the projection runs on the
host. For a min problem the gradient with respect to ``c_hat`` is ``-grad_{s_hat}``.

Losses over a pool of feasible states ``S = {p_1..p_P}`` (:mod:`imle_solvers.pool`), as
PyEPO's, max problem over scores (``s_hat = sign * c_hat``, ``s = sign * c``), ``w*`` the
target solution, ``o_p = <s_hat, p>``, ``t_p = <s, p>``:

- NCE (Mulamba et al., 2021): ``mean_p o_p - <s_hat, w*>``, gradient ``mean_p p - w*``;
- CMAP: ``max_p o_p - <s_hat, w*>``, gradient ``p_best - w*`` (``p_best`` the argmax);
- pointwise LTR (Mandi et al., 2022): ``mean_p (<c - c_hat, p>)^2`` (no sign);
- pairwise LTR: ``sum_p relu(o_p - o_b) / max(P - 1, 1)``, ``b = argmax_p t_p``;
- listwise LTR: ``-sum_p q_p log softmax(o)_p``, ``q = max(softmax(t), 1e-8)``.

For a min problem these are PyEPO's ``NCE``, ``contrastiveMAP``, ``pointwiseLTR``,
``pairwiseLTR`` and ``listwiseLTR`` over costs, value for value. No solve: the pool grows
before the call (:func:`imle_solvers.pool.pool_for_call`).

Failure policy (``on_failure`` of the bindings' losses, see :mod:`imle_solvers.failures`):
:func:`under_policy` runs a loss's solves through the same
:class:`~imle_solvers.failures.StatusLog` as the layers; an instance FAILED in any of its
solves (a PFYL's perturbed solves, SPO+'s solves of ``c`` and ``2 c_hat - c``, PG's two points, any Frank-Wolfe iteration's) gets value
0 and gradient 0, the others what they get in a batch without it; an INCUMBENT instance's
loss is computed from the incumbent state as if it were optimal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from ._array import Array, array_namespace, reshape
from .errors import InvalidInputError
from .estimators import PerturbedOptimizer, Solve, check_perturbations, multiplicative_factor, oriented, perturb
from .failures import SolveWithStatus, StatusLog, batch_size, zero_failed_rows
from .frank_wolfe import check_settings, regularized_map

__all__ = [
    "REDUCTIONS",
    "FenchelYoung",
    "LossDefinition",
    "SPOPlus",
    "LossValue",
    "check_reduction",
    "fenchel_young",
    "perturbation",
    "CMAP",
    "ListwiseLTR",
    "NCE",
    "PairwiseLTR",
    "PointwiseLTR",
    "PoolLoss",
    "StructuredSVM",
    "pool_loss",
    "reduce",
    "spo_plus",
    "structured_svm",
    "structured_svm_zero_one",
    "PerturbationGradient",
    "perturbation_gradient",
    "RegularizedFenchelYoung",
    "regularized_fenchel_young",
    "CaVE",
    "cone_aligned_cosine",
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


def structured_svm_zero_one(theta: Array, y_true: Array, solve: Solve, *, sign: int,
                            alpha: float = 1.0) -> LossValue:
    """The structured SVM loss of the 0-1 base loss (InferOpt's ``ZeroOneBaseLoss``) per
    instance and its subgradient, for states of 0/1 entries that all have the same number of
    ones and whose oracle only compares scores (a k-subset; one-hot argmax is ``KSubset(n, 1)``).

    ``Delta(y', y) = 1`` if ``y' != y`` else 0 is not linear in ``y'``; the loss
    ``max(max_{y' != y} <s, y'> + alpha, <s, y>) - <s, y>`` needs the best state other than
    ``y``. Any such state leaves out an item ``i`` that ``y`` holds, so the best one is among
    ``MAP(s)`` and the ``MAP(s with item i's score below all others)``, ``i = 1..n``: one oracle
    call of ``n + 1`` rows per instance; the candidates equal to ``y`` are set aside (an
    instance with no other state has loss 0 and gradient 0).

    Args:
        theta: ``(B, *shape)`` the prediction (scores, or costs for a min problem).
        y_true: ``(B, *shape)`` the target structures.
        solve: the problem's own oracle.
        sign: +1 max problem, -1 min problem.
        alpha: the weight of ``Delta``, >= 0.

    The solution returned is ``y_hat``, the best other state where the margin is violated
    (``<s, y_hat> + alpha > <s, y>``), else ``y_true``; the gradient is ``y_hat - y_true``.
    """
    xp = array_namespace(theta)
    _check_same_shape("StructuredSVMLoss", "y_true", y_true, theta)
    event = tuple(theta.shape[1:])
    n = 1
    for size in event:
        n *= int(size)
    y = reshape(xp.astype(y_true, theta.dtype), (-1, n))
    s = reshape(theta if sign == 1 else -theta, (-1, n))
    highest, lowest = xp.max(s, axis=1, keepdims=True), -xp.max(-s, axis=1, keepdims=True)
    below_all = lowest - (highest - lowest) - 1  # (B, 1): below every score of its row
    grid = xp.broadcast_to(xp.ones_like(s[:1, :]), (n + 1, n))  # on the scores' device
    # candidate 0 is s itself; candidate i lowers item i - 1
    lowered = xp.cumulative_sum(grid, axis=0) - 1 == xp.cumulative_sum(grid, axis=1)
    candidates = xp.where(lowered[None, :, :], below_all[:, :, None], s[:, None, :])  # (B, n + 1, n)
    states = oriented(solve, sign)(reshape(candidates, (-1, *event)))
    states = reshape(xp.astype(states, theta.dtype), (-1, n + 1, n))
    values = xp.sum(states * s[:, None, :], axis=2)  # (B, n + 1)
    other = xp.any(states != y[:, None, :], axis=2)
    spread = 2 * xp.max(xp.maximum(values, -values), axis=1, keepdims=True) + 1
    best = xp.argmax(values - xp.astype(~other, theta.dtype) * spread, axis=1)
    slots = xp.cumulative_sum(xp.ones_like(values), axis=1) - 1
    chosen = slots == xp.astype(best, theta.dtype)[:, None]
    best_other = xp.sum(xp.where(chosen[:, :, None], states, xp.zeros_like(states)), axis=1)
    margin = xp.sum((best_other - y) * s, axis=1) + alpha
    violated = xp.any(other, axis=1) & (margin > 0)
    y_hat = xp.where(violated[:, None], best_other, y)
    value = xp.where(violated, margin, xp.zeros_like(margin))
    grad = reshape(y_hat - y, (-1, *event))
    return LossValue(value, grad if sign == 1 else -grad, reshape(y_hat, (-1, *event)))


BASE_LOSSES = ("hamming", "zero_one")
# the problems whose best other state the 0-1 base loss finds (structured_svm_zero_one)
_ZERO_ONE_KINDS = ("k-subset",)


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

    ``base_loss="zero_one"`` (InferOpt's ``ZeroOneBaseLoss``, ``Delta(y', y) = 1`` if
    ``y' != y`` else 0) takes no ``delta_weight``: it is not linear in the state, and
    :func:`structured_svm_zero_one` finds the best state other than ``y_true`` with ``n + 1``
    solves per instance, for a :class:`~imle_solvers.KSubset` only (one-hot argmax is
    ``KSubset(n, 1)``); other problems are refused (:meth:`check_problem`).

    Attributes:
        alpha: the weight of ``Delta``, >= 0 (0: the perceptron loss, ``max <s, y'> - <s, y>``).
        base_loss: ``"hamming"`` (the Hamming loss, or a user's linear ``delta_weight``) or
            ``"zero_one"``.
    """

    alpha: float = 1.0
    base_loss: str = "hamming"
    perturbation: ClassVar[None] = None
    targets: ClassVar[tuple[str, ...]] = ("y_true", "delta_weight", "delta_constant")

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha >= 0:
            raise InvalidInputError(f"StructuredSVMLoss: alpha must be a number >= 0, got {self.alpha!r}")
        if self.base_loss not in BASE_LOSSES:
            raise InvalidInputError(f"StructuredSVMLoss: base_loss must be 'hamming' or 'zero_one', "
                                    f"got {self.base_loss!r}")

    def check_problem(self, problem: Any) -> None:
        """Refuse a problem whose best state other than the target the base loss cannot find."""
        if self.base_loss == "zero_one" and problem.kind not in _ZERO_ONE_KINDS:
            raise InvalidInputError(
                f"StructuredSVMLoss: base_loss='zero_one' needs the best state other than the target, which is "
                f"found for a KSubset (one-hot argmax: KSubset(n, 1)) only, not for {problem.label}; use the "
                "Hamming loss or a loss linear in the state (delta_weight)")

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        if self.base_loss == "zero_one":
            if targets.get("delta_weight") is not None or targets.get("delta_constant") is not None:
                raise InvalidInputError("StructuredSVMLoss: base_loss='zero_one' takes no delta_weight or "
                                        "delta_constant")
            return structured_svm_zero_one(prediction, targets["y_true"], solve, sign=sign, alpha=float(self.alpha))
        return structured_svm(prediction, targets["y_true"], solve, sign=sign, alpha=float(self.alpha),
                              delta_weight=targets.get("delta_weight"), delta_constant=targets.get("delta_constant"))


PG_VARIANTS = ("backward", "central")


def perturbation_gradient(c_hat: Array, c: Array, solve: Solve, *, sign: int, sigma: float = 0.1,
                          variant: str = "backward") -> LossValue:
    """The PG loss per instance and its gradient with respect to ``c_hat`` (see the module docstring).

    Args:
        c_hat: ``(B, *shape)`` the prediction, in the problem's own sense (costs for a min
            problem, scores for a max problem).
        c: ``(B, *shape)`` the true costs (scores).
        solve: the problem's own oracle; called once on ``(2 B, *shape)`` rows, each
            instance's two perturbed predictions next to each other.
        sign: +1 max problem, -1 min problem.
        sigma: the finite difference's width ``h`` (PyEPO's ``sigma``), > 0.
        variant: ``"backward"`` (PyEPO's ``two_sides=False``, PGB) or ``"central"``
            (``two_sides=True``, PGC).

    The solution returned is the state of the lower point, ``MAP(s_hat - sigma s)``
    (``w*(c_hat - sigma c)`` for a min problem). PyEPO divides by ``sigma + 1e-8``; here
    the width is exactly ``sigma`` (a relative difference of ``1e-8 / sigma``).
    """
    xp = array_namespace(c_hat)
    _check_same_shape("PGLoss", "c", c, c_hat)
    event, event_ndim = tuple(c_hat.shape[1:]), c_hat.ndim - 1
    c = xp.astype(c, c_hat.dtype)
    s_hat = c_hat if sign == 1 else -c_hat
    s = c if sign == 1 else -c
    lower = s_hat - sigma * s
    upper = s_hat if variant == "backward" else s_hat + sigma * s
    width = sigma if variant == "backward" else 2 * sigma
    points = xp.stack([upper, lower], axis=1)  # (B, 2, *shape): instance-major rows
    states = xp.reshape(oriented(solve, sign)(xp.reshape(points, (-1, *event))), points.shape)
    states = xp.astype(states, c_hat.dtype)
    y_upper, y_lower = states[:, 0, ...], states[:, 1, ...]
    value = (_inner(lower, y_lower, event_ndim) - _inner(upper, y_upper, event_ndim)) / width
    grad = (y_lower - y_upper) / width
    return LossValue(value, grad if sign == 1 else -grad, y_lower)


@dataclass(frozen=True)
class PerturbationGradient:
    """The PG losses (Huang and Gupta, 2024; PyEPO's ``perturbationGradient``, alias ``PG``)
    as the bindings' losses run them (:func:`perturbation_gradient`): no noise; the target is
    the true costs ``c`` ``(B, *shape)`` (scores for a max problem), no true solution needed.

    The bindings' ``PGLoss(problem, sigma=0.1, variant="backward", reduction="mean",
    **options)`` take the options of :class:`SPOPlus`; under ``on_failure="skip"`` an
    instance whose solve of either point fails adds 0 and gets gradient 0. Two solves per
    instance and call, in one oracle call of ``2 B`` rows. For a min problem the gradient
    with respect to ``c_hat`` is ``(w*(c_hat) - w*(c_hat - sigma c)) / sigma`` (backward)
    or ``(w*(c_hat + sigma c) - w*(c_hat - sigma c)) / (2 sigma)`` (central).

    Attributes:
        sigma: the finite difference's width ``h``, > 0 (PyEPO's default 0.1).
        variant: ``"backward"`` (PGB, PyEPO's ``two_sides=False``) or ``"central"`` (PGC,
            ``two_sides=True``).
    """

    sigma: float = 0.1
    variant: str = "backward"
    perturbation: ClassVar[None] = None
    targets: ClassVar[tuple[str, ...]] = ("c",)

    def __post_init__(self) -> None:
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not self.sigma > 0:
            raise InvalidInputError(f"PGLoss: sigma must be a number > 0, got {self.sigma!r}")
        if self.variant not in PG_VARIANTS:
            raise InvalidInputError(f"PGLoss: variant must be 'backward' or 'central', got {self.variant!r}")

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        return perturbation_gradient(prediction, targets["c"], solve, sign=sign, sigma=float(self.sigma),
                                     variant=self.variant)


def regularized_fenchel_young(theta: Array, y_true: Array, solve: Solve, *, sign: int, lambd: float = 1.0,
                              max_iter: int = 10000, tol: float = 1e-6) -> LossValue:
    """The Fenchel-Young loss of ``lambd/2 ||mu||^2`` per instance and its gradient (see the
    module docstring).

    Args:
        theta: ``(B, *shape)`` the prediction (scores, or costs for a min problem).
        y_true: ``(B, *shape)`` the observed structures.
        solve: the problem's own oracle; called once per Frank-Wolfe iteration on the ``B`` rows.
        sign: +1 max problem, -1 min problem.
        lambd, max_iter, tol: the regularization's strength and the Frank-Wolfe settings
            (:func:`imle_solvers.frank_wolfe.regularized_map`).

    The solution returned is the regularized solution ``y_lambda(sign * theta)``.
    """
    xp = array_namespace(theta)
    _check_same_shape("RegularizedFenchelYoungLoss", "y_true", y_true, theta)
    event_ndim = theta.ndim - 1
    s = theta if sign == 1 else -theta
    y_true = xp.astype(y_true, theta.dtype)
    mu = regularized_map(s, oriented(solve, sign), lambd=lambd, max_iter=max_iter, tol=tol).solution
    half = 0.5 * lambd
    value = (_inner(s, mu - y_true, event_ndim) - half * _inner(mu, mu, event_ndim)
             + half * _inner(y_true, y_true, event_ndim))
    grad = mu - y_true
    return LossValue(value, grad if sign == 1 else -grad, mu)


@dataclass(frozen=True)
class RegularizedFenchelYoung:
    """The Fenchel-Young loss of the quadratic regularizer, by regularized Frank-Wolfe
    (Dalle et al., 2022; PyEPO's ``regularizedFrankWolfeFenchelYoung``, alias ``RFY``), as
    the bindings' losses run it (:func:`regularized_fenchel_young`): no noise; its target is
    ``y_true``, the observed structures.

    The bindings' ``RegularizedFenchelYoungLoss(problem, lambd=1.0, max_iter=10000,
    tol=1e-6, reduction="mean", **options)`` take the options of :class:`SPOPlus`; under
    ``on_failure="skip"`` an instance whose solve fails in any iteration adds 0 and gets
    gradient 0. One oracle call of ``B`` rows per iteration, so the loop runs where values
    are known: whole on the host, in one host call of the framework per loss call
    (:meth:`imle_solvers.step.Plan.loss_on_host`: torch eagerly, a ``jax.pure_callback``, a
    ``tf.numpy_function``), so it works under ``jax.jit`` and ``tf.function`` too. The gradient
    with respect to ``theta`` is ``y_lambda(theta) - y_true`` for a max problem and
    ``y_true - y_lambda(-w)`` for a min problem over costs ``w``.

    Attributes:
        lambd: the regularization's strength ``lambda``, > 0 (PyEPO's default 1).
        max_iter: the most Frank-Wolfe iterations, >= 1 (PyEPO's default 10000).
        tol: the Frank-Wolfe gap at which an instance stops, >= 0 (PyEPO's default 1e-6).
    """

    lambd: float = 1.0
    max_iter: int = 10000
    tol: float = 1e-6
    perturbation: ClassVar[None] = None
    targets: ClassVar[tuple[str, ...]] = ("y_true",)
    # the loop's length depends on values: every framework runs the whole loss in one host
    # call (a trace cannot unroll it; on numpy the loop's small ops also cost a fraction of
    # torch's dispatch)
    whole_on_host: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_settings("RegularizedFenchelYoungLoss", self.lambd, self.max_iter, self.tol)

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        return regularized_fenchel_young(prediction, targets["y_true"], solve, sign=sign, lambd=float(self.lambd),
                                         max_iter=self.max_iter, tol=float(self.tol))


# below this, |s_hat| |p| is 0 for the cosine (torch's cosine_similarity's eps)
_COSINE_EPS = 1e-8


def cone_aligned_cosine(c_hat: Array, tight_ctrs: Array, project: Callable[..., tuple[Any]], *,
                        sign: int) -> LossValue:
    """The CaVE loss per instance and its gradient with respect to ``c_hat`` (see the module
    docstring).

    Args:
        c_hat: ``(B, *shape)`` the prediction (costs for a min problem, scores for a max one).
        tight_ctrs: ``(B, R, *shape)`` each instance's tight constraints' normals in ``<=``
            orientation, zero rows as padding (:func:`imle_solvers.tight.batch_tight_constraints`).
        project: the host function ``(s (B, n), rows (B, R, n)) -> (targets (B, n),)``
            (:class:`imle_solvers.cone.CaVETargets`), run through the framework's host call.
        sign: +1 max problem, -1 min problem.

    The solution returned is the target ``p`` (the projection, or CaVE Hybrid's blend).
    """
    from ._array import framework

    xp = array_namespace(c_hat)
    event = tuple(c_hat.shape[1:])
    if tight_ctrs.ndim != c_hat.ndim + 1 or tuple(tight_ctrs.shape[2:]) != event:
        raise InvalidInputError(f"CaVELoss: tight_ctrs must be (B, R, *shape) with shape {event}, "
                                f"got {tuple(tight_ctrs.shape)}")
    n = 1
    for size in event:
        n *= int(size)
    s = reshape(c_hat if sign == 1 else -c_hat, (-1, n))
    rows = reshape(xp.astype(tight_ctrs, c_hat.dtype), (-1, tight_ctrs.shape[1], n))
    (p,) = framework(c_hat).host_call(project, [s, rows], [(s.shape, s.dtype)])
    norm_s = xp.sqrt(xp.sum(s * s, axis=1))
    product = norm_s * xp.sqrt(xp.sum(p * p, axis=1))
    clamped = product < _COSINE_EPS
    cos = xp.sum(s * p, axis=1) / xp.clip(product, min=_COSINE_EPS)
    # where |s| |p| < eps the denominator is the constant eps: the gradient of cos is p / eps alone
    radial = xp.where(clamped, xp.zeros_like(cos), cos / xp.clip(norm_s * norm_s, min=_COSINE_EPS ** 2))
    grad = radial[:, None] * s - p / xp.clip(product, min=_COSINE_EPS)[:, None]
    grad = reshape(grad if sign == 1 else -grad, (-1, *event))
    return LossValue(1 - cos, grad, reshape(p, (-1, *event)))


@dataclass(frozen=True, eq=False)
class CaVE:
    """Cone-aligned vector estimation (Tang and Khalil, 2024; PyEPO's ``coneAlignedCosine``,
    alias ``CaVE``) as the bindings' losses run it (:func:`cone_aligned_cosine`): no noise, no
    solve; its target is ``tight_ctrs`` ``(B, R, *shape)``, the normals of the constraints
    binding at each instance's true solution (:func:`imle_solvers.tight.batch_tight_constraints`
    builds them from an ILP or a directed shortest-path problem and the true solutions).

    The bindings' ``CaVELoss(problem, solve_ratio=1.0, inner_ratio=0.2, seed=None,
    max_iter=None, reduction="mean", **options)`` take the options of :class:`SPOPlus` (they
    bear on nothing here but ``validate_args``: there is no solve). By default the projection
    is exact (NNLS, the paper's CaVE-E; PyEPO's ``max_iter`` large); ``max_iter=3`` is
    PyEPO's default, CaVE+: the interior-point solver Clarabel stopped after three
    iterations (:func:`imle_solvers.cone.project_truncated`; needs ``clarabel``). The
    gradient with respect to the prediction flows through ``s_hat`` only, the target held
    fixed.

    Attributes:
        solve_ratio: CaVE Hybrid: the probability, per call, that the batch is projected;
            otherwise its target is the blend of :func:`imle_solvers.cone.hybrid_targets`
            (1: always projected, PyEPO's default).
        inner_ratio: the blend's weight of the mean unit normal (PyEPO's default 0.2).
        seed: the seed of the per-call coin's numpy generator (None: fresh entropy).
        max_iter: None for the exact projection, or the interior-point iterations of
            CaVE+'s truncated one (PyEPO's default 3).
    """

    solve_ratio: float = 1.0
    inner_ratio: float = 0.2
    seed: int | None = None
    max_iter: int | None = None
    # the host function of the targets (imle_solvers.cone.CaVETargets), with its coin's generator
    project: Any = field(init=False, repr=False)
    perturbation: ClassVar[None] = None
    targets: ClassVar[tuple[str, ...]] = ("tight_ctrs",)

    def __post_init__(self) -> None:
        import numpy as np

        from .cone import CaVETargets, check_ratio

        ratios = (check_ratio("CaVELoss", "solve_ratio", self.solve_ratio),
                  check_ratio("CaVELoss", "inner_ratio", self.inner_ratio))
        iterations = self.max_iter
        if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int)
                                       or iterations < 1):
            raise InvalidInputError(f"CaVELoss: max_iter must be None (the exact projection) or an integer >= 1, "
                                    f"got {iterations!r}")
        object.__setattr__(self, "project", CaVETargets("CaVELoss", *ratios, np.random.default_rng(self.seed),
                                                        iterations))

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        tight = targets.get("tight_ctrs")
        if tight is None:
            raise InvalidInputError("CaVELoss: tight_ctrs is missing: the normals of the constraints binding at each "
                                    "instance's true solution, (B, R, *shape) (imle_solvers.batch_tight_constraints "
                                    "builds them)")
        return cone_aligned_cosine(prediction, tight, self.project, sign=sign)


def _pool_objectives(x: Array, pool: Array) -> tuple[Array, Array]:
    """``<x_b, p>`` for every instance ``b`` and pool state ``p``, ``(B, P)``, and the pool
    flattened, ``(P, n)``."""
    xp = array_namespace(x)
    n = 1
    for size in x.shape[1:]:
        n *= int(size)
    flat_pool = xp.reshape(pool, (pool.shape[0], n))
    return xp.matmul(reshape(x, (-1, n)), xp.permute_dims(flat_pool, (1, 0))), flat_pool


def _softmax(x: Array) -> tuple[Array, Array]:
    """Row-wise ``softmax(x)`` and ``log softmax(x)`` of ``x`` ``(B, P)``."""
    xp = array_namespace(x)
    shifted = x - xp.max(x, axis=1, keepdims=True)
    log_p = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    return xp.exp(log_p), log_p


def pool_loss(kind: str, prediction: Array, target: Array, pool: Array, *, sign: int) -> LossValue:
    """A pool loss per instance and its gradient with respect to ``prediction`` (see the
    module docstring).

    Args:
        kind: ``"nce"``, ``"cmap"`` (``target`` the true solutions ``w*``) or ``"pointwise"``,
            ``"pairwise"``, ``"listwise"`` (``target`` the true costs ``c``).
        prediction: ``(B, *shape)`` the predicted costs (scores for a max problem).
        target: ``(B, *shape)``.
        pool: ``(P, *shape)`` feasible states, shared by every instance.
        sign: +1 max problem, -1 min problem.

    The solution returned is ``w*`` (NCE) or the pool's best state under ``prediction``
    (CMAP), the pool's best state under ``target`` (pairwise), else ``target``.
    """
    xp = array_namespace(prediction)
    owner = _POOL_OWNERS[kind]
    _check_same_shape(owner, "the target", target, prediction)
    if tuple(pool.shape[1:]) != tuple(prediction.shape[1:]):
        raise InvalidInputError(f"{owner}: the pool's states have shape {tuple(pool.shape[1:])}, "
                                f"the prediction's {tuple(prediction.shape[1:])}")
    event, event_ndim = tuple(prediction.shape[1:]), prediction.ndim - 1
    target = xp.astype(target, prediction.dtype)
    pool = xp.astype(pool, prediction.dtype)
    s_hat = prediction if sign == 1 else -prediction
    size = pool.shape[0]
    if kind == "pointwise":  # no sign: a regression of every pool state's objective
        residual, flat_pool = _pool_objectives(target - prediction, pool)
        value = xp.mean(residual * residual, axis=1)
        grad = reshape(-2 / size * xp.matmul(residual, flat_pool), (-1, *event))
        return LossValue(value, grad, target)
    objectives, flat_pool = _pool_objectives(s_hat, pool)
    if kind in ("nce", "cmap"):
        if kind == "nce":
            chosen = reshape(xp.mean(flat_pool, axis=0), (1, *event)) + target * 0
            value = xp.mean(objectives, axis=1)
        else:
            chosen = reshape(xp.take(flat_pool, xp.argmax(objectives, axis=1), axis=0), (-1, *event))
            value = xp.max(objectives, axis=1)
        value = value - _inner(s_hat, target, event_ndim)
        grad = chosen - target
        return LossValue(value, grad if sign == 1 else -grad, target if kind == "nce" else chosen)
    truth, _ = _pool_objectives(target if sign == 1 else -target, pool)
    if kind == "pairwise":
        best = reshape(xp.take(flat_pool, xp.argmax(truth, axis=1), axis=0), (-1, *event))
        diff = objectives - reshape(_inner(s_hat, best, event_ndim), (-1, 1))
        active = xp.astype(diff > 0, prediction.dtype)
        scale = 1 / max(size - 1, 1)
        value = xp.sum(diff * active, axis=1) * scale
        counts = reshape(xp.sum(active, axis=1), (-1, *(1,) * event_ndim))
        grad = (reshape(xp.matmul(active, flat_pool), (-1, *event)) - counts * best) * scale
        return LossValue(value, grad if sign == 1 else -grad, best)
    if kind == "listwise":
        q = xp.clip(_softmax(truth)[0], min=1e-8)
        p, log_p = _softmax(objectives)
        value = -xp.sum(q * log_p, axis=1)
        weights = p * xp.sum(q, axis=1, keepdims=True) - q  # d value / d o
        grad = reshape(xp.matmul(weights, flat_pool), (-1, *event))
        return LossValue(value, grad if sign == 1 else -grad, target)
    raise InvalidInputError(f"pool_loss: unknown kind {kind!r}")


_POOL_OWNERS = {"nce": "NCELoss", "cmap": "CMAPLoss", "pointwise": "PointwiseLTRLoss", "pairwise": "PairwiseLTRLoss",
                "listwise": "ListwiseLTRLoss"}


@dataclass(frozen=True, eq=False)
class PoolLoss:
    """A loss over a pool of feasible states (:func:`pool_loss`) as the bindings' losses run
    it: no noise, no solve in the loss itself; before each call the step takes the pool
    through its growth rule (:func:`imle_solvers.pool.pool_for_call`: on the pool's coin the
    oracle solves the predictions and new solutions join it) and hands it over as the
    target ``pool``. Subclasses name the loss (``kind``) and its target.

    The bindings' ``NCELoss``, ``CMAPLoss`` (target: the true solutions ``w_true``) and
    ``PointwiseLTRLoss``, ``PairwiseLTRLoss``, ``ListwiseLTRLoss`` (target: the true costs
    ``c``) take ``(problem, pool, reduction="mean", **options)``, ``pool`` a
    :class:`~imle_solvers.pool.SolutionPool` (shared if the same object is given to several
    losses) or its initial states ``(P, *shape)`` (then ``solve_ratio=1``); the options are
    :class:`SPOPlus`'s. ``on_failure`` applies to the growth solves: under ``"raise"`` a
    failure names its instance, under ``"skip"`` a failed solution does not join the pool
    (and ``failures`` counts it); the loss itself needs no solve. Per-instance data are
    refused (one pool serves instances of one feasible set).

    Attributes:
        pool: the :class:`~imle_solvers.pool.SolutionPool`.
    """

    pool: Any
    perturbation: ClassVar[None] = None
    kind: ClassVar[str] = ""
    targets: ClassVar[tuple[str, ...]] = ()

    @property
    def owner(self) -> str:
        """The bindings' name of the loss, for its messages."""
        return _POOL_OWNERS[self.kind]

    def __call__(self, prediction: Array, targets: dict[str, Array], noise: Any, solve: Solve, sign: int) -> LossValue:
        return pool_loss(self.kind, prediction, targets[self.targets[0]], targets["pool"], sign=sign)


class NCE(PoolLoss):
    """Noise-contrastive estimation (Mulamba et al., 2021; PyEPO's ``NCE``): for a min problem
    ``mean_p <c_hat, w* - p>``, gradient ``w* - mean_p p``; target ``w_true`` ``(B, *shape)``."""

    kind: ClassVar[str] = "nce"
    targets: ClassVar[tuple[str, ...]] = ("w_true", "pool")


class CMAP(PoolLoss):
    """Contrastive MAP (PyEPO's ``contrastiveMAP``): for a min problem ``<c_hat, w*> - min_p
    <c_hat, p>``, gradient ``w* - p_best``; target ``w_true`` ``(B, *shape)``."""

    kind: ClassVar[str] = "cmap"
    targets: ClassVar[tuple[str, ...]] = ("w_true", "pool")


class PointwiseLTR(PoolLoss):
    """Pointwise learning to rank (Mandi et al., 2022; PyEPO's ``pointwiseLTR``):
    ``mean_p (<c - c_hat, p>)^2``; target the true costs ``c`` ``(B, *shape)``."""

    kind: ClassVar[str] = "pointwise"
    targets: ClassVar[tuple[str, ...]] = ("c", "pool")


class PairwiseLTR(PoolLoss):
    """Pairwise learning to rank (PyEPO's ``pairwiseLTR``): for a min problem
    ``sum_p relu(<c_hat, p_b> - <c_hat, p>) / max(P - 1, 1)``, ``p_b`` the pool's best
    state under the true costs ``c`` ``(B, *shape)``, the target."""

    kind: ClassVar[str] = "pairwise"
    targets: ClassVar[tuple[str, ...]] = ("c", "pool")


class ListwiseLTR(PoolLoss):
    """Listwise learning to rank (PyEPO's ``listwiseLTR``): for a min problem the cross-entropy
    ``-sum_p q_p log softmax(-c_hat S)_p``, ``q = max(softmax(-c S), 1e-8)``; target the true
    costs ``c`` ``(B, *shape)``."""

    kind: ClassVar[str] = "listwise"
    targets: ClassVar[tuple[str, ...]] = ("c", "pool")


LossDefinition = (FenchelYoung | SPOPlus | StructuredSVM | PerturbationGradient | RegularizedFenchelYoung | CaVE
                  | PoolLoss)


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
