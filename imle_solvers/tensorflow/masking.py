"""Keras mask semantics for the layers of a problem with a ``mask`` field (``KSubset``): an
incoming Keras mask (``Embedding(mask_zero=True)`` upstream, or ``mask=`` given) is the
instances' ``mask``, and no mask leaves the layer, since a mask on the scores means nothing
downstream of a solution (``Multiply()`` after the layer then works)."""

from __future__ import annotations

from typing import Any

from ..problems import Problem


class KerasMaskAsData:
    """A mixin before ``keras.layers.Layer``: call :meth:`take_keras_masks` in ``__init__``
    and merge the ``mask`` argument of ``call`` with :meth:`with_keras_mask`."""

    supports_masking: bool

    def take_keras_masks(self, problem: Problem) -> None:
        """Accept Keras masks where ``problem`` has a ``mask`` field (after Layer.__init__)."""
        self.supports_masking = "mask" in problem.instance_fields

    def with_keras_mask(self, data: dict[str, Any], mask: Any) -> dict[str, Any]:
        """``data`` with Keras' ``mask`` (None: no mask arrived) as the instances' ``mask``."""
        return data if mask is None or not self.supports_masking else {**data, "mask": mask}

    def compute_mask(self, inputs: Any, previous_mask: Any = None) -> None:
        """No mask leaves the layer."""
        return None
