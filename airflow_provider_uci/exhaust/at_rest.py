"""Personal data at rest: files only their owner may read, in folders only their owner may enter, and
scratch copies that do not outlive a load, however it ends.

Every file that may hold personal data (an exhaust downloaded or copied to a folder, the CSV taken out
of the private zip, a reject file) is created with mode ``0600``, and every folder made for one with
``0700``; folders that exist already are left as they are. A load's scratch folder (the decrypted
private CSV) is a temporary folder removed when the load ends: by its ``finally`` on an error, and on
``SIGTERM`` too, which :func:`sigterm_unwinds` turns into an exception while the load runs.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> Path:
    """Create ``path`` and each missing folder above it with mode 0700; return ``path``."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile: it is someone else's to set
        os.chmod(folder, FOLDER_MODE)  # whatever the umask
    if not path.is_dir():
        raise NotADirectoryError(f"{path.name}: exists and is not a folder")
    return path


def open_private(path: Path, mode: str = "wb", **options: Any) -> IO[Any]:
    """Open ``path`` for writing, created or emptied, with mode 0600 (an existing file's mode is narrowed).

    :param mode: ``"wb"`` or ``"w"`` (then ``options`` such as ``encoding`` go to :func:`os.fdopen`).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode: must be 'wb' or 'w', got {mode!r}")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
        return os.fdopen(descriptor, mode, **options)
    except BaseException:
        os.close(descriptor)
        raise


class Terminated(BaseException):
    """SIGTERM arrived while a load ran: raised where it ran, so that every ``finally`` on the way out runs."""


class LoadTerminated(RuntimeError):
    """The load was stopped by SIGTERM; its transaction was rolled back and its scratch files removed."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in it (once); then the signal goes on to
    the handler that was there before: the default one ends the process, as SIGTERM would have.

    Only the main thread may set signal handlers: in another thread, or when SIGTERM is ignored or
    handled outside Python, nothing is set and the block's ``finally`` clauses are what clean up.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None or previous == signal.SIG_IGN:
        yield
        return
    raised = [False]

    def unwind(signum: int, frame: object) -> None:
        if not raised[0]:  # a second SIGTERM must not cut the clean-up short
            raised[0] = True
            raise Terminated()

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)  # the previous handler's turn
        raise LoadTerminated("the load was stopped by SIGTERM: rolled back, scratch files removed") from None
    finally:
        if signal.getsignal(signal.SIGTERM) is unwind:
            signal.signal(signal.SIGTERM, previous)
