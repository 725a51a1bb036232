"""JAX as a framework: arrays that may be traced (``jit``, ``vmap``, ``grad``).

Host calls are ``jax.pure_callback`` (under ``jax.vmap`` one call sees every mapped call,
``vmap_method="broadcast_all"``). A traced check cannot raise without a host callback,
which would make a step impossible to export (``jax.export``): a traced ``check_rows``
returns a poison instead, NaN rows in the step's output; a concrete one raises now.

Its random source: a PRNG key, drawn with ``jax.random`` or, with
``noise_source="numpy"``, ``numpy.random.default_rng(numpy_seed(key))`` on the host.

Errors raised on the host reach the caller wrapped by XLA (``JaxRuntimeError``, our
message last) and are logged by JAX before that. :func:`unwrapping_errors` re-raises the
original instead, for calls made outside a trace.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _binding
from ..noise import JaxSource
from ..options import NoiseOptions, OracleOptions, take_options
from . import Array, HostFunction, ResultSpec, poison_of


class JaxFramework:
    name = "jax"
    traces = True

    def owns(self, x: Any) -> bool:
        return isinstance(x, jax.Array)

    def namespace(self, x: Array) -> Any:
        return jnp

    def device(self, x: Array) -> Any:
        from array_api_compat import device

        return device(x)

    def is_traced(self, x: Array) -> bool:
        return isinstance(x, jax.core.Tracer)

    def on_accelerator(self, x: Array) -> bool:
        return not self.is_traced(x) and any(d.platform != "cpu" for d in x.devices())

    def batch_size(self, x: Array) -> int:
        return x.shape[0]

    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x)

    def host_call(self, fn: HostFunction, args: Sequence[Array], results: Sequence[ResultSpec]) -> tuple:
        specs = tuple(jax.ShapeDtypeStruct(tuple(shape), dtype) for shape, dtype in results)
        host = functools.partial(recording_errors, fn)
        return tuple(jax.pure_callback(host, specs, *args, vmap_method="broadcast_all"))

    def check_rows(self, ok: Array, report: HostFunction, args: Sequence[Array], *words: Any) -> Array | None:
        if ok is None:  # the device cannot tell (a problem without device checks): the host checks
            jax.debug.callback(functools.partial(recording_errors, report), *args)
            return None
        if isinstance(ok, jax.core.Tracer):  # also a constant's check inside a trace
            return poison_of(ok, jnp, jnp.result_type(float))
        if not bool(jnp.all(ok)):  # the values are known (an eager grad's tracers carry them)
            report(*(np.asarray(jax.lax.stop_gradient(a)) for a in args))
        return None


FRAMEWORK = JaxFramework()


# --- the random source --------------------------------------------------------------

def scores_and_value(theta: Any) -> tuple[jax.Array, jax.Array]:
    """``theta`` as a JAX array, and its value without tangent, on which a call is checked
    and planned (concrete under an eager ``jax.grad``). The value is a JAX array too: the
    primal of ``jax.grad``'s argument is the numpy array it was given, if it was one."""
    theta = theta if isinstance(theta, jax.Array) else jnp.asarray(theta)
    return theta, jnp.asarray(jax.lax.stop_gradient(theta))


def numpy_seed(key: jax.Array) -> int:
    """The numpy seed a call with ``key`` draws its noise from when ``noise_source="numpy"``
    (``key`` must be concrete)."""
    return _binding.seed_from_words(np.asarray(_seed_words(key)))


def _seed_words(key: jax.Array) -> jax.Array:
    return jax.random.bits(key, (2,), jnp.uint32)


def draw_noise(estimator: Any, noise_source: str, theta: jax.Array, key: jax.Array) -> jax.Array | None:
    """A call's noise ``(B, samples, marginal_samples, *shape)`` from ``key``, or None."""
    if estimator.noise is None:
        return None
    if noise_source == "native":
        return estimator.draw(theta, JaxSource(key, theta.dtype))
    shape = _binding.noise_shape(estimator, theta.shape)
    host = _binding.NumpyNoiseOfKeys(estimator, theta.shape, theta.dtype)
    return FRAMEWORK.host_call(host, [_seed_words(key)], [(shape, theta.dtype)])[0]


def traced_oracle(owner: str, problem: Any, options: dict[str, Any], oracle_options: OracleOptions | None,
            noise_options: NoiseOptions | None, takes: tuple[str, ...] = ("noise_source",)) -> tuple[Any, str]:
    """The oracle of a JAX layer or loss, its ``backend="auto"`` resolved as a traced JAX call
    resolves it (so the backend reported is the one that runs), and the noise source;
    ``takes``: the noise options the caller takes (none for a layer without noise)."""
    oracle, noise, _ = take_options(owner, options, oracle_options, noise_options, noise=takes)
    built = oracle.oracle(problem)
    traced = built.solver_for_framework("jax", stays=True)
    if traced is not built.solver:
        built = dataclasses.replace(oracle, backend=traced.backend).oracle(problem)
    return built, noise.noise_source


# --- errors: ours, not JAX's wrapping of them -------------------------------------------
# Recorded errors are matched to the wrapping error by their text, not by thread: on an
# accelerator the callback runs on another thread than the call.

_RECENT_ERRORS: collections.deque[BaseException] = collections.deque(maxlen=8)  # bounded: a jit's are never taken
_RECENT_LOCK = threading.Lock()


def recording_errors(host: Callable[..., Any], *args: Any) -> Any:
    """``host(*args)``, recording the exception it raises (see the module docstring)."""
    try:
        return host(*args)
    except Exception as error:
        with _RECENT_LOCK:
            _RECENT_ERRORS.append(error)
        raise


def _recorded(error: BaseException | None) -> bool:
    with _RECENT_LOCK:
        return any(error is e for e in _RECENT_ERRORS)


def _take_original(wrapped: BaseException) -> BaseException | None:
    """The recorded exception that ``wrapped`` wraps (the latest whose ``Type: message``
    its message holds), forgotten once taken; None if there is none."""
    text = str(wrapped)
    with _RECENT_LOCK:
        for error in reversed(_RECENT_ERRORS):
            if f"{type(error).__name__}: {error}" in text:
                _RECENT_ERRORS.remove(error)
                return error
    return None


def unwrapping_errors(compiled: Callable[..., Any], *args: Any) -> Any:
    """``compiled(*args)``, run to completion, raising a host callback's own exception
    (e.g. a :class:`~imle_solvers.errors.SolverError` with its ``index``) instead of
    JAX's wrapping of it. Under an outer ``jax.jit`` (traced ``args``) nothing runs here,
    and errors arrive as JAX raises them."""
    try:
        # block: with asynchronous dispatch the error would otherwise surface later, elsewhere
        return jax.block_until_ready(compiled(*args))
    except Exception as wrapped:
        original = _take_original(wrapped)
        if original is None:
            raise
    # raised outside the except block: no "During handling of the above exception" wrapper
    raise original


class _DropRecordedErrors(logging.Filter):
    """Drops JAX's log of an exception our host side raised: it reaches the caller anyway,
    with the same traceback, and was printed twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _recorded(record.exc_info[1]))


# the loggers of jax.pure_callback's failures (jax/_src/callback.py); a filter on a logger
# sees only that logger's own records
for _name in ("jax._src.callback", "jax._src.debugging"):
    logging.getLogger(_name).addFilter(_DropRecordedErrors())
del _name
