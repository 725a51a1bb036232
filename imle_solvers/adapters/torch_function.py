"""A :class:`~imle_solvers.problems.TorchFunctionProblem` solved by its own torch function
(torch is imported when the solver runs, never at registration)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..problems import TorchFunctionProblem
from .registry import register_solver

if TYPE_CHECKING:
    import torch


@register_solver(
    TorchFunctionProblem.kind, "torch",
    batched=True, array_native=("torch",), inline=False, requires=("torch",), extra="torch",
)
def solve_torch_function(
    theta: torch.Tensor | np.ndarray, problem: TorchFunctionProblem, data: dict[str, Any] | None = None
) -> torch.Tensor | np.ndarray:
    """A batch ``(N, *shape)`` through the user's function: a tensor as it is (``n_jobs=1``),
    or a numpy chunk on a worker as a CPU tensor; the result as the input's kind, dtype, device.
    ``data``: the rows' per-instance data, passed to the function as tensors by name."""
    import torch

    tensors = {name: torch.as_tensor(value) for name, value in (data or {}).items()}
    with torch.no_grad():
        if isinstance(theta, np.ndarray):
            return torch.as_tensor(problem.fn(torch.from_numpy(theta), **tensors)).numpy()
        return torch.as_tensor(problem.fn(theta, **tensors)).to(dtype=theta.dtype, device=theta.device)
