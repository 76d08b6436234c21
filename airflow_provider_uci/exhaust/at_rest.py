"""Personal data at rest: files only their owner may read, in folders only their owner may enter, and
scratch copies that do not outlive a load, however it ends.

Every file that may hold personal data (an exhaust downloaded or copied to a folder, the CSV taken out
of the private zip, a reject file) is created with mode ``0600``, and every folder made for one with
``0700``; folders that exist already are left as they are. A load's scratch folder (the decrypted
private CSV) is a temporary folder removed when the load ends: by its ``finally`` on an error, and on
``SIGTERM`` too, which :func:`sigterm_unwinds` turns into an exception while the load runs. SIGKILL
(the out-of-memory killer, Airflow's kill after a timeout) runs no ``finally``: each scratch folder
(:func:`scratch_folder`) holds a lock while its run lives, and the next run sweeps the folders whose
lock nobody holds, and any older than a day (:func:`sweep_scratch`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
FOLDER_MODE = 0o700
#: The prefixes of the scratch folders loads and copies make in the system's temporary folder.
SCRATCH_PREFIXES = ("uci-load-", "uci-exhaust-")
#: A scratch folder this old is removed whoever made it and whether or not its run still holds it.
SCRATCH_MAX_AGE = 24 * 3600.0
_LOCK = ".uci-scratch.lock"


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


@contextmanager
def scratch_folder(prefix: str, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A new ``0700`` folder in the system's temporary folder (or ``parent``), removed when the block ends.

    While the block runs the folder's lock file is held (``flock``), so that :func:`sweep_scratch` in another
    process tells it from the folder of a run that was killed. Sweeps first.
    """
    sweep_scratch(parent)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))  # mode 0700
    try:
        with _held(folder / _LOCK):
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _held(lock: Path) -> Iterator[None]:
    descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    try:
        try:
            import fcntl

            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # no flock (Windows): only the age rule sweeps
            pass
        yield
    finally:
        os.close(descriptor)  # lets the lock go


def sweep_scratch(
    parent: str | os.PathLike[str] | None = None,
    *,
    max_age: float = SCRATCH_MAX_AGE,
    now: float | None = None,
) -> list[str]:
    """Remove the scratch folders (:data:`SCRATCH_PREFIXES`) of runs that ended without cleaning up: those
    whose lock no live run holds, and any older than ``max_age`` seconds. Return the names removed.

    A folder this user cannot remove (another user's) is left, silently; nothing outside the folders is
    touched (no link is followed).
    """
    root = Path(parent or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(SCRATCH_PREFIXES):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            old = now - entry.stat(follow_symlinks=False).st_mtime > max_age
            if old or _abandoned(Path(entry.path) / _LOCK):
                shutil.rmtree(entry.path)
                removed.append(entry.name)
        except OSError:
            continue  # not ours to remove, or removed meanwhile
    if removed:
        log.info(
            "Removed %d scratch folder(s) left by runs that were killed: %s", len(removed), ", ".join(removed)
        )
    return removed


def _abandoned(lock: Path) -> bool:
    """Whether the folder's lock file is there and no live process holds it."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        descriptor = os.open(lock, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False  # no lock file: being made now, or not made by scratch_folder (the age rule applies)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: its run is alive
    finally:
        os.close(descriptor)
    return True
