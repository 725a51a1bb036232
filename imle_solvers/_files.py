"""Files a user names: read with a byte bound that no file can get around, written
without destroying one.

``stat().st_size`` is 0 for ``/dev/zero`` and for a named pipe, so a size check
before reading bounds nothing; and opening a pipe that no one writes to blocks.
:func:`read_bounded` opens without blocking, refuses anything but a regular file,
and reads at most ``max_bytes + 1`` bytes: one byte more than allowed is a refusal.
:func:`check_output` refuses an output path that is an input or an existing file
(without ``force``) before any work is done; :func:`write_atomically` writes it.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidInputError

# O_NONBLOCK: opening a FIFO for reading returns at once instead of waiting for a writer
# (POSIX only; elsewhere there are no FIFOs to wait on). O_NOCTTY: a terminal named as a
# file never becomes the controlling terminal.
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class FileRefused(InvalidInputError):
    """A file that is not read: not a regular file, or larger than its bound.

    Attributes:
        reason: what is wrong, without the path.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def read_bounded(path: str | os.PathLike[str], max_bytes: int, *, what: str = "the file", limit: str = "") -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    ``what`` names the file in messages, ``limit`` names the setting that bounds it
    (e.g. ``"max_text_bytes"``).

    Raises:
        FileRefused: not a regular file (a pipe, a device, a directory), or more than
            ``max_bytes`` bytes; never blocks on a pipe, never reads past ``max_bytes + 1``.
        OSError: the file cannot be opened or read (missing, no permission).
    """
    fd = os.open(os.fspath(path), _FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise FileRefused(path, f"{what} is {kind}; only a regular file is read")
        named = f" ({limit})" if limit else ""
        if info.st_size > max_bytes:
            raise FileRefused(path, f"{what} is {info.st_size:,} bytes; the limit is {max_bytes:,}{named}")
        with os.fdopen(fd, "rb", closefd=True) as stream:
            fd = -1  # the stream owns it now
            # as much as fstat says (not max_bytes: read() allocates what it is asked for), and
            # where the file grew since, on to max_bytes + 1
            first = min(info.st_size, max_bytes) + 1
            data = stream.read(first)
            if len(data) == first <= max_bytes:
                data += stream.read(max_bytes + 1 - first)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise FileRefused(path, f"{what} is more than {max_bytes:,} bytes; the limit is {max_bytes:,}{named}")
    return data


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (after links and ``..``), existing or not."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet): compare what they resolve to
        return Path(first).resolve() == Path(second).resolve()


def check_output(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], *, force: bool,
                 flag: str = "--out") -> Path:
    """Refuse, before any work, an output ``path`` that would destroy data: one of the
    ``inputs`` (after links and ``..``, even with ``force``), an existing file (unless
    ``force``) or a directory, or one whose folder cannot be created (a file stands on
    the way). Creates nothing; :func:`write_atomically` creates the folder.

    Raises:
        FileRefused: naming ``path`` and why, and how to go on where there is a way.
    """
    out = Path(path)
    for given in inputs:
        if same_file(out, given):
            raise FileRefused(out, f"{flag} is also an input ({given}); writing it would destroy that input, "
                                   "so it is refused even with --force: choose another file")
    if out.is_dir():
        raise FileRefused(out, f"{flag} is a directory; name a file")
    if (out.exists() or out.is_symlink()) and not force:
        raise FileRefused(out, f"{flag} exists; pass --force to overwrite it")
    folder = out.parent
    while not folder.exists():  # the nearest folder that exists must be a folder we may write into
        folder = folder.parent
    if not folder.is_dir():
        raise FileRefused(out, f"cannot create the folder of {flag}: {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileRefused(out, f"cannot write into {folder}: permission denied")
    return out


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create ``path``'s folder, let ``write`` fill a temporary file beside ``path``, then
    move it in place: an interrupted write never leaves half a file, nor destroys the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # 0o666 less the umask, as open() would give the file itself (tempfile's are 0o600)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
