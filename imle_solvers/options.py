"""The options of a layer or loss, once: the oracle's and the noise's.

Every layer and loss of every framework takes them, either as keywords (``backend="scipy",
n_jobs=4, seed=0``) or as the option objects themselves (``oracle_options=OracleOptions(
n_jobs=4)``, ``noise_options=NoiseOptions(seed=0)``); :func:`take_options` turns either
into the two objects, and a Keras config stores them through :meth:`OracleOptions.config`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from .cache import SolutionCache
from .errors import InvalidInputError
from .failures import OnFailure
from .oracle import MAPOracle
from .problems.base import Problem

NoiseSource = Literal["native", "numpy"]

__all__ = ["NoiseOptions", "NoiseSource", "OracleOptions", "take_options"]


@dataclass(frozen=True)
class OracleOptions:
    """How a layer's or loss's :class:`~imle_solvers.MAPOracle` solves (each field as the
    oracle's argument of that name; see docs/parallel.md and docs/failures.md).

    Attributes:
        backend: a solver name (``imle_solvers.list_solvers``) or ``"auto"``.
        n_jobs: concurrent tasks; 1 solves in the calling process, -1 on every core.
        parallel_backend: ``"loky"``, ``"threading"``, ``"sequential"``, ``"dask"`` or ``"ray"``.
        chunk_size: instances per task, or ``"auto"``.
        time_limit: seconds per instance, or None.
        work_limit: deterministic work units per instance (CP-SAT: deterministic seconds;
            SCIP: branch-and-bound nodes), or None; refused for a backend without one.
        on_failure: ``"raise"``, ``"skip"`` or ``"incumbent"``.
        cache: a :class:`~imle_solvers.cache.SolutionCache` (``True``: one with the
            defaults) or None; runtime state, so not part of :meth:`config`.
    """

    backend: str = "auto"
    n_jobs: int = 1
    parallel_backend: str = "loky"
    chunk_size: int | str = "auto"
    time_limit: float | None = None
    on_failure: OnFailure = "raise"
    cache: SolutionCache | bool | None = None
    work_limit: float | None = None

    def oracle(self, problem: Problem) -> MAPOracle:
        """The oracle of ``problem`` with these options (its constructor checks them)."""
        return MAPOracle(problem, **{f.name: getattr(self, f.name) for f in fields(self)})

    def config(self) -> dict[str, Any]:
        """The options as JSON-able keywords (``cache`` left out, and ``work_limit`` unless
        set: a config saved before it existed stays the config of the same options)."""
        return {name: value for name, value in asdict(self).items()
                if name != "cache" and not (name == "work_limit" and value is None)}


@dataclass(frozen=True)
class NoiseOptions:
    """Where a layer's or loss's noise comes from.

    Attributes:
        seed: the seed of its noise generator, or None (the framework's default
            generator, or fresh entropy; see each binding).
        noise_source: ``"native"`` draws with the framework, on the scores' device and in
            their dtype; ``"numpy"`` draws on the host from
            ``numpy.random.default_rng(seed)``, the same noise in torch, JAX and Keras.
    """

    seed: int | None = None
    noise_source: NoiseSource = "native"

    def __post_init__(self) -> None:
        if self.noise_source not in ("native", "numpy"):
            raise InvalidInputError(f"noise_source must be 'native' or 'numpy', got {self.noise_source!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidInputError(f"seed must be an int or None, got {self.seed!r}")

    def config(self) -> dict[str, Any]:
        return asdict(self)


ORACLE_OPTIONS = tuple(f.name for f in fields(OracleOptions))
NOISE_OPTIONS = tuple(f.name for f in fields(NoiseOptions))


def take_options(
    owner: str,
    keywords: dict[str, Any],
    oracle_options: OracleOptions | None = None,
    noise_options: NoiseOptions | None = None,
    *,
    noise: tuple[str, ...] = NOISE_OPTIONS,
    others: bool = False,
) -> tuple[OracleOptions, NoiseOptions, dict[str, Any]]:
    """The oracle and noise options of a constructor's ``keywords`` (keywords override the
    option objects given), and the keywords left over.

    Args:
        owner: how errors name the caller.
        noise: the noise options this caller takes (JAX takes no ``seed``: its calls take a key).
        others: whether keywords that are no option may remain (a Keras layer passes them on
            to ``keras.layers.Layer``); else they are an error naming them.
    """
    oracle_options = oracle_options or OracleOptions()
    noise_options = noise_options or NoiseOptions()
    for name, given in (("oracle_options", oracle_options), ("noise_options", noise_options)):
        expected = OracleOptions if name == "oracle_options" else NoiseOptions
        if not isinstance(given, expected):
            raise InvalidInputError(f"{owner}: {name} must be a {expected.__name__}, got {given!r}")
    oracle = {name: keywords.pop(name) for name in ORACLE_OPTIONS if name in keywords}
    noise_given = {name: keywords.pop(name) for name in noise if name in keywords}
    if keywords and not others:
        unknown = ", ".join(sorted(keywords))
        known = ", ".join((*ORACLE_OPTIONS, *noise, "validate_args"))
        raise TypeError(f"{owner}: unexpected keyword argument(s) {unknown}; the options are {known}")
    return replace(oracle_options, **oracle), replace(noise_options, **noise_given), keywords
