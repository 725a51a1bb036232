"""Random sources: where noise draws come from.

A noise distribution (:mod:`.distributions`) is written once against three primitive
draws, and a source provides them from one framework's generator:

- :class:`NumpySource`: a ``numpy.random.Generator``, float64 on the host. The same seed
  gives the same draw in every framework (``noise_source="numpy"`` in the bindings);
- :class:`TorchSource`: a ``torch.Generator`` (or torch's default one) on the tensor's
  device, in its dtype;
- :class:`JaxSource`: a JAX PRNG key, split for each draw, usable inside ``jax.jit``;
- :class:`TensorFlowSource`: stateless TensorFlow draws keyed by a counter that the Keras
  layer keeps as a weight (so it is saved with the model), usable inside ``tf.function``.

Shapes may hold ``None`` in front (TensorFlow's unknown batch size while tracing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._array import Array, array_namespace

Shape = Sequence[int | None]


class RandomSource(Protocol):
    """Three primitive draws, each a fresh array of ``shape``."""

    def uniform(self, shape: Shape) -> Array:
        """Uniform on [0, 1)."""
        ...

    def gumbel(self, shape: Shape) -> Array:
        """Standard Gumbel(0, 1)."""
        ...

    def standard_gamma(self, concentration: float, shape: Shape) -> Array:
        """Gamma(concentration, scale 1)."""
        ...


def gumbel_from_uniform(u: Array) -> Array:
    """Gumbel(0, 1) as ``-log(-log(u))``, ``u`` kept off 0 (as ``torch.distributions.Gumbel``)."""
    xp = array_namespace(u)
    return -xp.log(-xp.log(xp.clip(u, min=float(xp.finfo(u.dtype).tiny))))


@dataclass(frozen=True)
class NumpySource:
    """Draws from a ``numpy.random.Generator``: float64 numpy arrays on the host."""

    generator: np.random.Generator

    def uniform(self, shape: Shape) -> np.ndarray:
        return self.generator.random(tuple(shape))

    def gumbel(self, shape: Shape) -> np.ndarray:
        return self.generator.gumbel(size=tuple(shape))

    def standard_gamma(self, concentration: float, shape: Shape) -> np.ndarray:
        return self.generator.standard_gamma(concentration, size=tuple(shape))


@dataclass(frozen=True)
class TorchSource:
    """Draws from a ``torch.Generator`` on ``device`` in ``dtype``; ``generator=None`` uses
    torch's default generator of that device (seeded by ``torch.manual_seed``)."""

    generator: Any  # torch.Generator | None
    dtype: Any
    device: Any

    def uniform(self, shape: Shape) -> Array:
        import torch

        return torch.rand(tuple(shape), generator=self.generator, dtype=self.dtype, device=self.device)

    def gumbel(self, shape: Shape) -> Array:
        import torch

        # gumbel_from_uniform in place: one buffer, no temporaries (this is a hot path)
        u = self.uniform(shape)
        return u.clamp_(min=torch.finfo(u.dtype).tiny).log_().neg_().log_().neg_()

    def standard_gamma(self, concentration: float, shape: Shape) -> Array:
        import torch

        alpha = torch.full(tuple(shape), concentration, dtype=self.dtype, device=self.device)
        return torch._standard_gamma(alpha, generator=self.generator)


@dataclass
class JaxSource:
    """Draws from a JAX PRNG key in ``dtype``; each draw uses a fresh split of the key."""

    key: Any
    dtype: Any

    def _next_key(self) -> Any:
        import jax

        self.key, key = jax.random.split(self.key)
        return key

    def uniform(self, shape: Shape) -> Array:
        import jax

        return jax.random.uniform(self._next_key(), tuple(shape), self.dtype)

    def gumbel(self, shape: Shape) -> Array:
        import jax

        return jax.random.gumbel(self._next_key(), tuple(shape), self.dtype)

    def standard_gamma(self, concentration: float, shape: Shape) -> Array:
        import jax

        return jax.random.gamma(self._next_key(), concentration, tuple(shape), self.dtype)


@dataclass(frozen=True)
class TensorFlowSource:
    """Stateless TensorFlow draws (``tf.random.stateless_*``) in ``dtype``, each keyed by a fresh
    seed from ``next_seed()`` (a ``(2,)`` int32 tensor); ``batch`` (a scalar tensor) replaces a
    leading ``None`` in shapes."""

    next_seed: Callable[[], Any]
    dtype: Any
    batch: Any = None

    def _shape(self, shape: Shape) -> Any:
        if shape[0] is None:
            import tensorflow as tf

            return tf.stack([self.batch, *shape[1:]])
        return tuple(shape)

    def uniform(self, shape: Shape) -> Array:
        import tensorflow as tf

        return tf.random.stateless_uniform(self._shape(shape), self.next_seed(), dtype=self.dtype, alg="philox")

    def gumbel(self, shape: Shape) -> Array:
        return gumbel_from_uniform(self.uniform(shape))

    def standard_gamma(self, concentration: float, shape: Shape) -> Array:
        import tensorflow as tf

        return tf.random.stateless_gamma(self._shape(shape), self.next_seed(), concentration, dtype=self.dtype)


def as_source(rng: Any) -> RandomSource:
    """A :class:`RandomSource` from a source or a ``numpy.random.Generator`` (the latter is
    what the framework-free API takes: ``estimator.sample(..., rng=np.random.default_rng(0))``)."""
    return NumpySource(rng) if isinstance(rng, np.random.Generator) else rng
