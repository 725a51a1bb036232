"""JAX binding: the estimators as a pure function of ``(theta, key[, state])``.

The solver runs on the host through ``jax.pure_callback`` and the backward pass is a
``jax.custom_vjp``; the gradient math is :mod:`imle_solvers.estimators`', reached
through :mod:`imle_solvers._binding`. The function works eagerly, under
``jax.jit``, ``jax.grad`` and ``jax.vmap`` (all mapped calls go to the host in one
callback, and stateless estimators solve them in one oracle call).

Randomness: a call's noise comes from ``numpy.random.default_rng(numpy_seed(key))``,
so the same key gives the same noise as a torch or Keras layer built with
``seed=numpy_seed(key)`` (first call).

Adaptive state (AIMLE): a dict of scalars passed in and updated functionally. The
update is only known in the backward pass, so it comes back as the *cotangent of
the state argument*, to be added to the state::

    f = imle(problem, AIMLE(...))
    state = f.initial_state()
    (g_params, g_state) = jax.grad(loss, argnums=(0, 1))(params, state, key)
    state = apply_state_update(state, g_state)   # state + g_state

An unused output (no backward pass) leaves the cotangent zero, i.e. the state unchanged.
"""

from __future__ import annotations

import numpy as np

from . import _binding
from .errors import InvalidInputError, missing_dependency
from .estimators import Estimator
from .oracle import MAPOracle
from .problems import Problem
from .problems.base import check_batch_shape

try:
    import jax
    import jax.numpy as jnp
except ImportError as error:  # pragma: no cover - exercised without jax installed
    raise missing_dependency("jax", "jax") from error

__all__ = ["IMLEFunction", "imle", "numpy_seed", "apply_state_update"]

State = dict[str, jax.Array]


def numpy_seed(key: jax.Array) -> int:
    """The numpy seed a call with ``key`` draws its noise from (``key`` must be concrete)."""
    return _binding.seed_from_words(np.asarray(_seed_words(key)))


def _seed_words(key: jax.Array) -> jax.Array:
    return jax.random.bits(key, (2,), jnp.uint32)


def apply_state_update(state: State, update: State) -> State:
    """The next state: ``state + update``, ``update`` being the state's cotangent."""
    return jax.tree.map(jnp.add, state, update)


class IMLEFunction:
    """A differentiable discrete layer as a JAX function: ``f(theta, key[, state]) -> z``.

    ``theta`` is ``(B, *problem.shape)``; ``z`` is ``(B, *shape)``, or
    ``(B, samples, *shape)`` when the estimator draws several samples, in ``theta``'s
    dtype. ``key`` is a JAX PRNG key. A stateful estimator (AIMLE) takes its
    ``state`` (see :meth:`initial_state`) as third argument; see the module
    docstring for how the updated state comes back. :meth:`map` gives the MAP state
    (evaluation), without noise or gradient.

    Build it with :func:`imle`.
    """

    def __init__(
        self,
        problem: Problem,
        estimator: Estimator,
        backend: str = "auto",
        n_jobs: int = 1,
        parallel_backend: str = "loky",
        chunk_size: int | str = "auto",
        time_limit: float | None = None,
    ) -> None:
        self.problem = problem
        self.estimator = estimator
        self.oracle = MAPOracle(
            problem,
            backend=backend,
            n_jobs=n_jobs,
            parallel_backend=parallel_backend,
            chunk_size=chunk_size,
            time_limit=time_limit,
        )
        self.state_fields = _binding.state_fields(estimator)
        core = jax.custom_vjp(self._primal)
        core.defvjp(self._forward, self._backward)
        self._core = core

    def __repr__(self) -> str:
        return f"IMLEFunction({self.problem!r}, {self.estimator!r}, backend={self.oracle.solver.backend!r})"

    def initial_state(self) -> State | None:
        """The estimator's initial state as a dict of float scalars (None if stateless)."""
        values = _binding.state_to_array(self.estimator.initial_state())
        if not self.state_fields:
            return None
        return {name: jnp.asarray(v, dtype=jnp.result_type(float)) for name, v in zip(self.state_fields, values)}

    def __call__(self, theta: jax.Array, key: jax.Array, state: State | None = None) -> jax.Array:
        """Perturb-and-MAP samples of ``theta`` ``(B, *shape)`` with the estimator's gradient."""
        theta = jnp.asarray(theta)
        check_batch_shape(theta.shape, self.problem.shape, "theta")
        if (state is None) != (not self.state_fields):
            raise InvalidInputError(
                f"{type(self.estimator).__name__}: state must be "
                + ("passed (see initial_state())" if self.state_fields else "None: the estimator is stateless")
            )
        vector = (
            jnp.stack([jnp.asarray(state[name]) for name in self.state_fields])
            if self.state_fields
            else jnp.zeros((0,), dtype=theta.dtype)
        )
        return self._core(theta, _seed_words(key), vector)

    def map(self, theta: jax.Array) -> jax.Array:
        """The MAP states ``(B, *shape)`` of ``theta`` ``(B, *shape)``; no gradient flows."""
        theta = jax.lax.stop_gradient(jnp.asarray(theta))
        check_batch_shape(theta.shape, self.problem.shape, "theta")
        spec = jax.ShapeDtypeStruct(theta.shape, theta.dtype)
        return jax.pure_callback(self._map_host, spec, theta, vmap_method="broadcast_all")

    # --- custom_vjp -----------------------------------------------------------------

    def _primal(self, theta: jax.Array, seed: jax.Array, state: jax.Array) -> jax.Array:
        return self._forward(theta, seed, state)[0]

    def _forward(self, theta: jax.Array, seed: jax.Array, state: jax.Array) -> tuple[jax.Array, tuple]:
        shapes = _binding.layout(self.estimator, theta.shape)
        specs = [jax.ShapeDtypeStruct(s, theta.dtype) for s in (shapes.z, shapes.states, shapes.noise) if s]
        z, states, *noise = jax.pure_callback(self._sample_host, tuple(specs), theta, seed, vmap_method="broadcast_all")
        return z, (theta, seed, state, states, noise[0] if noise else None)

    def _backward(self, residuals: tuple, grad_z: jax.Array) -> tuple[jax.Array, np.ndarray, jax.Array]:
        theta, seed, state, states, noise = residuals
        specs = (jax.ShapeDtypeStruct(theta.shape, theta.dtype), jax.ShapeDtypeStruct(state.shape, state.dtype))
        args = (theta, states, grad_z, state) + (() if noise is None else (noise,))
        grad, update = jax.pure_callback(self._gradient_host, specs, *args, vmap_method="broadcast_all")
        return grad, np.zeros(seed.shape, dtype=jax.dtypes.float0), update

    # --- host side (numpy; leading axes beyond (B, *shape) are vmapped calls) --------
    # The callbacks may receive jax.Arrays on the host: np.asarray makes them numpy.

    def _groups(self, theta: np.ndarray) -> tuple[tuple[int, ...], int]:
        lead = theta.shape[: theta.ndim - 1 - len(self.problem.shape)]
        return lead, int(np.prod(lead, dtype=np.int64))

    def _map_host(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta)
        event = self.problem.shape
        return np.asarray(self.oracle(theta.reshape(-1, *event)), theta.dtype).reshape(theta.shape)

    def _sample_host(self, theta: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, ...]:
        theta, seed = np.asarray(theta), np.asarray(seed)
        lead, groups = self._groups(theta)
        rngs = [_binding.generator(_binding.seed_from_words(w)) for w in seed.reshape(groups, 2)]
        outputs = _binding.sample(self.estimator, self.oracle, theta.reshape(groups, *theta.shape[len(lead) :]), rngs)
        return tuple(np.asarray(o, theta.dtype).reshape(*lead, *o.shape[1:]) for o in outputs if o is not None)

    def _gradient_host(
        self, theta: np.ndarray, states: np.ndarray, grad_z: np.ndarray, state: np.ndarray, *noise: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        theta, states, grad_z, state, *noise = map(np.asarray, (theta, states, grad_z, state, *noise))
        lead, groups = self._groups(theta)

        def grouped(x: np.ndarray) -> np.ndarray:
            return x.reshape(groups, *x.shape[len(lead) :])

        old = grouped(state).astype(np.float64)
        grad, new = _binding.gradient(
            self.estimator,
            self.oracle,
            grouped(theta),
            grouped(states),
            grouped(noise[0]) if noise else None,
            grouped(grad_z),
            old,
        )
        update = (new - old).astype(state.dtype).reshape(state.shape)
        return np.asarray(grad, theta.dtype).reshape(theta.shape), update


def imle(
    problem: Problem,
    estimator: Estimator,
    backend: str = "auto",
    n_jobs: int = 1,
    parallel_backend: str = "loky",
    chunk_size: int | str = "auto",
    time_limit: float | None = None,
) -> IMLEFunction:
    """The differentiable JAX function of ``problem`` under ``estimator``; see :class:`IMLEFunction`.

    Args:
        problem: what to solve, e.g. ``KSubset(n, k)``.
        estimator: ``IMLE(...)``, ``AIMLE(...)`` or ``STE(...)``.
        backend: solver name (see ``imle_solvers.list_solvers``) or ``"auto"``.
        n_jobs, parallel_backend, chunk_size, time_limit: passed to
            :class:`~imle_solvers.MAPOracle` (see docs/parallel.md).
    """
    return IMLEFunction(
        problem,
        estimator,
        backend=backend,
        n_jobs=n_jobs,
        parallel_backend=parallel_backend,
        chunk_size=chunk_size,
        time_limit=time_limit,
    )
