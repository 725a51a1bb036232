"""Arrays from the files the command line names (``.npy``, ``.npz``, ``.json``), bounded.

Every file is read with a byte bound (:func:`~imle_solvers._files.read_bounded`), never
as a pickle. An ``.npz`` is a zip whose members decompress to more than the file
holds (a 4 MB file can hold a 4 GB member of zeros), so each member is checked
before it is loaded: the size its zip header declares, and the size its ``.npy``
header declares (shape times item size), both against what is left of the bound;
and only the members asked for are loaded, an unknown one is refused by name.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ._files import FileRefused, read_bounded

# What one scores or data file may hold, on disk and decompressed: well past any batch a
# command line solves (a (1000, 100, 100) float64 batch is 80 MB), far from exhausting memory.
MAX_ARRAY_BYTES = 1 << 30

_NUMBERS = "biuf"  # booleans, integers, floats: what scores and parameters are


def load_array(path: Path, max_bytes: int | None = None) -> np.ndarray:
    """An array from ``.npy`` (no pickles) or ``.json`` (nested lists of numbers), as float64;
    ``max_bytes`` bounds the file and the array (None: :data:`MAX_ARRAY_BYTES`).

    Raises:
        FileRefused: not a regular file, or past ``max_bytes`` (on disk or as an array).
        ValueError: not such a file, or not an array of numbers (the message says why).
        OSError: the file cannot be read.
    """
    max_bytes = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    if path.suffix == ".npy":
        data = read_bounded(path, max_bytes, what="the array file")
        return _read_npy(io.BytesIO(data), path, len(data), max_bytes).astype(np.float64, copy=False)
    if path.suffix == ".json":
        return _json_array(_read_json(path, max_bytes), path)
    raise ValueError(f"{path}: expected a .npy or .json file")


def load_arrays(path: Path, names: Collection[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays ``names`` (those present) from ``.npz`` (no pickles) or a ``.json`` object
    of nested lists; an entry not in ``names`` is refused by name, before anything is loaded.

    Raises:
        FileRefused: not a regular file, or a member or the whole past ``max_bytes``.
        ValueError: not such a file, an unknown entry, or not arrays of numbers.
        OSError: the file cannot be read.
    """
    max_bytes = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    if path.suffix == ".npz":
        return _read_npz(path, names, max_bytes)
    if path.suffix == ".json":
        values = _read_json(path, max_bytes)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of named arrays")
        _refuse_unknown(path, values, names)
        return {name: _json_array(value, path, name) for name, value in values.items()}
    raise ValueError(f"{path}: expected a .npz or .json file")


def _read_json(path: Path, max_bytes: int) -> Any:
    data = read_bounded(path, max_bytes, what="the JSON file")
    try:
        return json.loads(data)
    except RecursionError:  # [[[[... nested past Python's stack
        raise ValueError(f"{path}: the JSON is nested too deeply") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text: {error}") from None


def _json_array(value: Any, path: Path, name: str | None = None) -> np.ndarray:
    where = f"{path}" + (f": {name!r}" if name is not None else "")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise ValueError(f"{where}: expected numbers in nested lists of equal lengths") from None
    return array


def _refuse_unknown(path: Path, present: Collection[str], names: Collection[str]) -> None:
    unknown = sorted(set(present) - set(names))
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ValueError(f"{path}: {unknown[0]!r} is not a batched parameter of the spec (it has: {known})")


def _read_npz(path: Path, names: Collection[str], max_bytes: int) -> dict[str, np.ndarray]:
    data = read_bounded(path, max_bytes, what="the .npz file")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            _refuse_unknown(path, members, names)
            arrays, left = {}, max_bytes
            for name, info in members.items():
                if info.file_size > left:
                    raise FileRefused(path, f"member {name!r} decompresses to {info.file_size:,} bytes; the "
                                            f"limit is {max_bytes:,} for the whole file")
                with archive.open(info) as stream:
                    arrays[name] = _read_npy(stream, path, info.file_size, left, name)
                left -= arrays[name].nbytes
            return arrays
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not a .npz (zip) file: {error}") from None


def _read_npy(stream: BinaryIO, path: Path, size: int, max_bytes: int, name: str | None = None) -> np.ndarray:
    """One ``.npy`` from ``stream`` of ``size`` bytes, its header checked before its data is read."""
    where = f"{path}" + (f": member {name!r}" if name is not None else "")
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject or dtype.kind not in _NUMBERS:
            raise ValueError(f"arrays of dtype {dtype} are not read (numbers only, never pickles)")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > max_bytes:
            what = f"member {name!r}" if name is not None else "the array"
            raise FileRefused(path, f"{what} of shape {shape} and dtype {dtype} is {nbytes:,} bytes; the "
                                    f"limit is {max_bytes:,}")
        if nbytes > size:
            raise ValueError(f"the header declares shape {shape} ({nbytes:,} bytes), more than the {size:,} "
                             "bytes stored")
        count = math.prod(shape)
        array = np.frombuffer(stream.read(nbytes), dtype=dtype, count=count) if count else np.zeros(0, dtype)
        return array.reshape(shape, order="F" if fortran else "C").copy()
    except FileRefused:
        raise
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{where}: not a readable .npy: {error}") from None
