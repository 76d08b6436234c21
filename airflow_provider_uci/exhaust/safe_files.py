"""Files written safely: whole or not at all, never through a planted link, never over what is not a file.

Every file the project writes goes through here (downloads, the CSV taken out of the private zip,
reject files, reports, SQLite warehouses):

- a target that exists and is not a regular file (a symbolic link, a folder, a FIFO, a device node)
  is refused (:class:`UnsafeTarget`), so ``--out /dev/null`` as root cannot replace the system's own
  and a link planted at a fixed name cannot redirect a write;
- a file that appears whole (:func:`atomic_writer`) is written to a scratch file made by
  :func:`tempfile.mkstemp` in the target's folder (a new name, created exclusively, never a link) and
  renamed over the target with :func:`os.replace`, which replaces a directory entry and follows no link;
- a file written as it goes (:func:`create_private`, a reject log) is created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``, after an earlier regular file of that name is removed;
- files are made ``0600`` and missing folders ``0700`` (``exhaust.at_rest.private_folder``).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from airflow_provider_uci.exhaust.at_rest import FILE_MODE, private_folder

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafeTarget(ValueError):
    """A file would be written where something other than a regular file stands; nothing was written."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_target(path: str | os.PathLike[str], field: str = "path") -> Path:
    """Return ``path`` if nothing stands there or a regular file does; else raise naming ``field``.

    A symbolic link is refused whatever it points at: a write must not go where a link planted at a
    fixed name leads.

    :raises UnsafeTarget: the path is a link, a folder, a FIFO, a device node or a socket.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        raise UnsafeTarget(
            f"{field}: {str(path)!r} is {_kind(mode)}; only a new path or a regular file is "
            "written (and replaced whole), so nothing was written"
        )
    return path


@contextmanager
def atomic_writer(
    target: str | os.PathLike[str],
    mode: str = "wb",
    *,
    field: str = "path",
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Write ``target`` whole or not at all: yield a handle on a new ``0600`` scratch file beside it, renamed
    over it when the block ends without an error (and removed when it raises).

    :param mode: ``"wb"`` or ``"w"`` (then ``encoding`` and ``newline`` apply).
    :param field: the target's name in errors (a parameter or a flag).
    :raises UnsafeTarget: the target exists and is not a regular file (checked before and again just
        before the rename).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: must be 'wb' or 'w', got {mode!r}")
    target = check_target(target, field)
    folder = private_folder(target.parent)
    descriptor, scratch = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:100]}.", suffix=".partial")
    try:
        os.fchmod(descriptor, FILE_MODE)
        options: dict[str, Any] = (
            {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": newline}
        )
        with os.fdopen(descriptor, mode, **options) as handle:
            descriptor = -1
            yield handle
        check_target(target, field)
        os.replace(scratch, target)
    except BaseException:
        if descriptor >= 0:
            os.close(descriptor)
        Path(scratch).unlink(missing_ok=True)
        raise


def atomic_write_text(
    target: str | os.PathLike[str], text: str, *, field: str = "path", encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``target`` whole or not at all (:func:`atomic_writer`); return the target."""
    with atomic_writer(target, "w", field=field, encoding=encoding) as handle:
        handle.write(text)
    return Path(target)


def create_private(
    path: str | os.PathLike[str], mode: str = "wb", *, field: str = "path", **options: Any
) -> IO[Any]:
    """Create ``path`` afresh with mode ``0600`` for writing as it goes, never through a link.

    An earlier regular file of that name is removed first; anything else standing there is refused.
    The file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a link planted between the removal and
    the creation makes it fail, never write elsewhere. Missing folders are made ``0700``.

    :param mode: ``"wb"`` or ``"w"`` (then ``options`` such as ``encoding`` go to :func:`os.fdopen`).
    :raises UnsafeTarget: the path is a link, a folder, a FIFO, a device node or a socket.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: must be 'wb' or 'w', got {mode!r}")
    path = check_target(path, field)
    private_folder(path.parent)
    path.unlink(missing_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        raise UnsafeTarget(
            f"{field}: {str(path)!r} appeared while it was being created; nothing was written"
        ) from None
    try:
        os.fchmod(descriptor, FILE_MODE)
        return os.fdopen(descriptor, mode, **options)
    except BaseException:
        os.close(descriptor)
        raise


def create_private_empty(path: str | os.PathLike[str], *, field: str = "path") -> bool:
    """Create ``path`` as an empty ``0600`` file if nothing stands there (never through a link); return
    whether it was made. An existing file (or a link to one: a database moved by its owner) is left as it
    is; a folder, a FIFO, a device node or a dangling link is refused."""
    path = Path(path)
    private_folder(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        if not path.is_file():
            mode = os.lstat(path).st_mode
            what = "a link to nothing" if stat.S_ISLNK(mode) else _kind(mode)
            raise UnsafeTarget(f"{field}: {str(path)!r} is {what}, not a file; nothing was written") from None
        return False
    os.fchmod(descriptor, FILE_MODE)
    os.close(descriptor)
    return True
