"""An adaptive estimator's state (AIMLE's) in JAX: a pytree passed in, whose update comes
back as its cotangent (the update is only known in the backward pass);
:func:`value_and_grad` returns the next state as a value. Mapped calls (``jax.vmap``)
sharing one state move it once, by their mean update."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ..estimators import AdaptiveState

__all__ = ["State", "apply_state_update", "as_state", "one_update", "value_and_grad"]

State = AdaptiveState


def apply_state_update(state: State, update: State) -> State:
    """The next state: ``state + update``, ``update`` being the state's cotangent."""
    return jax.tree.map(jnp.add, state, update)


def value_and_grad(fun: Any, argnums: int | tuple[int, ...] = 0, *, state_argnum: int = 1) -> Any:
    """``jax.value_and_grad`` of ``fun``, a loss whose argument ``state_argnum`` is an adaptive
    estimator's state: ``(value, next_state), grads``, the next state returned as a value
    (as ``has_aux=True`` returns its aux), ``grads`` those of ``argnums``.

    ``next_state`` is ``state`` plus its cotangent (:func:`apply_state_update`): a state used
    in one call per step moves as that call's backward pass says; unused, it stays."""
    many = not isinstance(argnums, int)
    wanted = tuple(argnums) if many else (argnums,)

    def value_grads_state(*args: Any, **kwargs: Any) -> tuple[tuple[Any, State], Any]:
        value, grads = jax.value_and_grad(fun, argnums=(*wanted, state_argnum))(*args, **kwargs)
        state = apply_state_update(args[state_argnum], grads[-1])
        return (value, state), (grads[:-1] if many else grads[0])

    return value_grads_state


@jax.custom_batching.custom_vmap
def one_update(new: jax.Array, old: jax.Array) -> jax.Array:
    """The cotangent that moves a state field from ``old`` to ``new``."""
    return jnp.asarray(new - old, old.dtype)


@one_update.def_vmap
def one_update_mapped(size: int, batched: list[bool], new: jax.Array, old: jax.Array) -> tuple[jax.Array, bool]:
    # The mapped calls of a jax.vmap share one state (old not mapped): JAX adds their
    # cotangents, so each gives 1/size of the mean update, and the state takes one step.
    if batched[0] and not batched[1]:
        mean = jnp.mean(jnp.asarray(new - old, old.dtype), axis=0)
        return jnp.broadcast_to(mean / size, new.shape), True
    old = old if batched[1] or not batched[0] else jnp.broadcast_to(old, new.shape)
    return jnp.asarray(new - old, old.dtype), batched[0] or batched[1]


def as_state(state: AdaptiveState | dict[str, Any]) -> State:
    """An adaptive state whose fields are float scalars (traced ones stay traced); a dict
    (a ``state_dict()``) is taken too."""
    values = state._asdict() if isinstance(state, AdaptiveState) else dict(state)
    return AdaptiveState(**{name: jnp.asarray(value, dtype=jnp.result_type(float)) for name, value in values.items()})
