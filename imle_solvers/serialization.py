"""Problems, estimators and noise distributions as JSON-able dicts, and back.

One generic mechanism serves every class: a registered dataclass is written as its
*type tag* and its ``__init__`` fields, each field walked recursively::

    >>> to_config(KSubset(n=10, k=3))
    {'__class__': 'KSubset', 'fields': {'n': 10, 'k': 3}}
    >>> from_config(to_config(KSubset(n=10, k=3))) == KSubset(n=10, k=3)
    True

Values a field may hold, and how they are written:

- ``None``, ``bool``, ``int``, ``str`` and finite ``float`` as themselves; a non-finite
  float as ``{"__float__": "inf" | "-inf" | "nan"}`` (JSON has no infinity);
- numpy scalars as the Python number they hold;
- ``list`` as a list, ``tuple`` as ``{"__tuple__": [...]}``, a dict with string keys as
  ``{"__dict__": {...}}``;
- a numpy array of booleans or numbers as ``{"__ndarray__": {"dtype", "shape", "data"}}``,
  ``data`` the base64 of its bytes in that dtype (exact, also for floats);
- a scipy sparse matrix as ``{"__sparse__": {"shape", "data", "indices", "indptr"}}``
  (CSR arrays, read back as ``scipy.sparse.csr_array``);
- an instance of a registered class, as above.

Reading a config back builds only registered classes (a closed list, never an import
by name) and arrays of boolean or numeric dtype: a config file is data, not code. Each
class's own ``__init__`` / ``__post_init__`` checks the values again.

Registered: every problem (:class:`~imle_solvers.KSubset`,
:class:`~imle_solvers.GridShortestPath`, :class:`~imle_solvers.GraphShortestPath`,
:class:`~imle_solvers.BipartiteMatching`, :class:`~imle_solvers.GraphMatching`,
:class:`~imle_solvers.ILP` with its :class:`~imle_solvers.Variable` blocks and batched
parameters, the graphs' :class:`~imle_solvers.problems.EdgeListGraph`), estimator
(``IMLE``, ``AIMLE``, ``STE``, ``BlackboxDifferentiation``, ``NegativeIdentity``,
``PerturbedOptimizer``) and noise distribution (``Gumbel``, ``SumOfGamma``, ``Normal``)
of the library, each where it is defined (``@register`` on the class);
:class:`~imle_solvers.TorchFunctionProblem` holds a function and has no config. A
problem of your own that is a dataclass of such values joins with :func:`register`.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from typing import Any

import numpy as np
import scipy.sparse as sp

# the built-in classes register where they are defined (``@register``); importing their
# modules here makes them readable whatever the user imported first
from . import estimators, noise, problems  # noqa: F401  (registration)
from ._field_types import field_types, mismatch
from ._registration import _BY_CLASS, _BY_TAG, qualified, register, registered
from .errors import ImleSolversError, InvalidInputError, SerializationError

__all__ = ["ConfigError", "MAX_CONFIG_DEPTH", "register", "registered", "to_config", "from_config"]

# How deep a config may nest (classes, tuples, lists, dicts): the library's deepest, an ILP
# with batched parameters, is 6; 100,000 levels would exhaust Python's stack.
MAX_CONFIG_DEPTH = 64


class ConfigError(SerializationError, InvalidInputError):
    """A config that cannot be read back: malformed, too deep, naming a class that is not
    registered, or a field whose value does not fit (its type, its enum, or the class's own
    checks); the message names the field's path in the config, e.g. ``config.fields.n``."""

# array dtype kinds a config may hold: booleans, signed and unsigned integers, floats, complex
_ARRAY_KINDS = "biufc"


def to_config(obj: Any) -> dict[str, Any]:
    """The JSON-able config of ``obj``, an instance of a registered class.

    Raises:
        SerializationError: ``obj`` (or a value in its fields) has no config; the message
            names its class and where it sits (e.g. ``ILP.variables[0].lower``).
    """
    if type(obj) not in _BY_CLASS:
        raise _unregistered(obj, type(obj).__name__)
    return _encode(obj, type(obj).__name__)


def from_config(config: dict[str, Any]) -> Any:
    """The object a :func:`to_config` config describes.

    Every field's value is checked against the field's annotation (types, ``Literal``
    enums, booleans never taken for integers) before the class's own checks run.

    Raises:
        ConfigError: (a :class:`~imle_solvers.errors.SerializationError` and an
            :class:`~imle_solvers.errors.InvalidInputError`) the config is malformed, nested
            deeper than :data:`MAX_CONFIG_DEPTH`, names a class that is not registered, or
            holds a value that does not fit its field; the message says where in the config.
        imle_solvers.errors.InvalidInputError: the class's own checks refuse the values.
    """
    if not (isinstance(config, dict) and "__class__" in config):
        raise ConfigError(f"from_config: expected a config with a '__class__' entry, got {_short(config)}")
    return _decode(config, "config", 0)


# --- encoding ---------------------------------------------------------------------


def _encode(value: Any, path: str) -> Any:
    if isinstance(value, np.generic) and value.dtype.kind in _ARRAY_KINDS + "U":
        value = value.item()  # a numpy scalar (np.float32(1.5), np.int64(3)) as the Python value it holds
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, list):
        return [_encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise SerializationError(f"{path}: only dicts with string keys have a config")
        return {"__dict__": {k: _encode(v, f"{path}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _encode_array(value, path)}
    if sp.issparse(value):
        csr = sp.csr_array(value)
        return {
            "__sparse__": {
                "shape": list(csr.shape),
                **{part: _encode_array(getattr(csr, part), f"{path}.{part}") for part in ("data", "indices", "indptr")},
            }
        }
    if type(value) in _BY_CLASS:
        fields = {
            field.name: _encode(getattr(value, field.name), f"{path}.{field.name}")
            for field in dataclasses.fields(value)
            if field.init
        }
        return {"__class__": _BY_CLASS[type(value)], "fields": fields}
    raise _unregistered(value, path)


def _encode_array(array: np.ndarray, path: str) -> dict[str, Any]:
    if array.dtype.kind not in _ARRAY_KINDS:
        raise SerializationError(f"{path}: arrays of dtype {array.dtype} have no config (booleans and numbers only)")
    data = np.ascontiguousarray(array)
    return {"dtype": data.dtype.str, "shape": list(data.shape), "data": base64.b64encode(data.tobytes()).decode("ascii")}


def _unregistered(value: Any, path: str) -> SerializationError:
    cls = type(value)
    if dataclasses.is_dataclass(cls):
        how = (f"register it with imle_solvers.serialization.register({cls.__name__}) "
               f"(its fields must be numbers, strings, tuples, lists, numpy arrays or registered classes)")
    else:
        how = "only registered dataclasses, numbers, strings, tuples, lists, dicts and numpy/scipy arrays have one"
    return SerializationError(f"{path}: {qualified(cls)} has no config: {how}")


# --- decoding ---------------------------------------------------------------------


def _decode(value: Any, path: str, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth >= MAX_CONFIG_DEPTH:
        raise ConfigError(f"{path}: the config is nested more than {MAX_CONFIG_DEPTH} levels deep")
    depth += 1
    if isinstance(value, list):
        return [_decode(v, f"{path}[{i}]", depth) for i, v in enumerate(value)]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise ConfigError(f"{path}: not a config value: {_short(value)}")
    if "__class__" in value:
        return _decode_instance(value, path, depth)
    if len(value) != 1:
        raise ConfigError(f"{path}: not a config value: {_short(value)}")
    (tag, body), = value.items()
    if tag == "__float__" and body in ("inf", "-inf", "nan"):
        return float(body)
    if tag == "__tuple__" and isinstance(body, list):
        return tuple(_decode(v, f"{path}[{i}]", depth) for i, v in enumerate(body))
    if tag == "__dict__" and isinstance(body, dict):
        return {k: _decode(v, f"{path}[{k!r}]", depth) for k, v in body.items()}
    if tag == "__ndarray__":
        return _decode_array(body, path)
    if tag == "__sparse__" and isinstance(body, dict) and set(body) == {"shape", "data", "indices", "indptr"}:
        parts = [_decode_array(body[part], f"{path}.{part}") for part in ("data", "indices", "indptr")]
        try:
            return sp.csr_array(tuple(parts), shape=tuple(_shape(body["shape"], path)))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{path}: not a CSR matrix: {error}") from None
    raise ConfigError(f"{path}: not a config value: {_short(value)}")


def _decode_instance(value: dict[str, Any], path: str, depth: int) -> Any:
    tag, fields = value.get("__class__"), value.get("fields")
    if set(value) != {"__class__", "fields"} or not isinstance(fields, dict):
        raise ConfigError(f"{path}: a class's config holds '__class__' and 'fields', got {_short(value)}")
    cls = _BY_TAG.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ConfigError(
            f"{path}: unknown class {tag!r}; registered: {', '.join(sorted(_BY_TAG))} (a class of your own must be "
            f"registered with imle_solvers.serialization.register before its config is read)"
        )
    known = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"{path}: {tag} has no fields {unknown}")
    annotations = field_types(cls)
    values = {}
    for name, field in fields.items():
        values[name] = _decode(field, f"{path}.fields.{name}", depth)
        expected = mismatch(values[name], annotations[name]) if name in annotations else None
        if expected is not None:
            raise ConfigError(f"{path}.fields.{name}: {tag}.{name} must be {expected}, got {_short(values[name])}")
    try:
        return cls(**values)
    except ImleSolversError:  # the class's own refusal, which names the field
        raise
    except Exception as error:  # noqa: BLE001 - a raw TypeError/ValueError of a constructor is a bad config
        raise ConfigError(f"{path}: {tag} refuses the config's fields: {type(error).__name__}: {error}") from error


def _decode_array(body: Any, path: str) -> np.ndarray:
    if not (isinstance(body, dict) and set(body) == {"dtype", "shape", "data"}):
        raise ConfigError(f"{path}: an array's config holds 'dtype', 'shape' and 'data', got {_short(body)}")
    try:
        dtype = np.dtype(body["dtype"])
        data = base64.b64decode(body["data"], validate=True)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path}: unreadable array: {error}") from None
    if dtype.kind not in _ARRAY_KINDS:
        raise ConfigError(f"{path}: arrays of dtype {dtype} are not read (booleans and numbers only)")
    shape = _shape(body["shape"], path)
    if len(data) != dtype.itemsize * math.prod(shape):
        raise ConfigError(f"{path}: {len(data)} bytes do not make a {dtype} array of shape {tuple(shape)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()  # a copy: writeable, owning its memory


def _shape(shape: Any, path: str) -> list[int]:
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ConfigError(f"{path}: a shape is a list of non-negative integers, got {_short(shape)}")
    return shape


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

