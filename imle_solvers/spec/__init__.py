"""ILPs declared as data (YAML, JSON, a dict) or with a Python builder.

A spec is never evaluated as Python: YAML is read with the safe loader, the
structure is checked against ``imle_solvers/schemas/ilp.schema.json`` and the
constraints are parsed by the small grammar of :mod:`.expressions`. What a spec
may grow to is bounded by :class:`SpecLimits`. See ``docs/spec.md``.
"""

from ..errors import UnknownProblemError
from .builder import BuildError, ILPBuilder
from .compiler import load_dict, load_yaml
from .errors import SpecError
from .limits import SpecLimits
from .named import list_named_ilps, named_ilp, register_ilp, unregister_ilp
from .schema import ilp_schema

__all__ = [
    "BuildError",
    "ILPBuilder",
    "SpecError",
    "SpecLimits",
    "UnknownProblemError",
    "ilp_schema",
    "list_named_ilps",
    "load_dict",
    "load_yaml",
    "named_ilp",
    "register_ilp",
    "unregister_ilp",
]
