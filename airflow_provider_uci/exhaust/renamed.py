"""The zip password's one name, and its old names still accepted with a ``DeprecationWarning``.

The private exhaust zip's password is ``zip_password`` wherever the project names it: parameters and
fields, the connection's extra, ``--zip-password`` on the command line and ``UCI_EXHAUST_ZIP_PASSWORD`` in
the environment. The submit request's field that carries it stays ``encryptionKey``: that is the
service's name, on the wire and in its job table. The old spellings are read here only, each with a
warning that names the new one. No Airflow import: the data code, the CLI and the provider share it.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

ZIP_PASSWORD = "zip_password"
ZIP_PASSWORD_FLAG = "--zip-password"
ZIP_PASSWORD_ENV = "UCI_EXHAUST_ZIP_PASSWORD"
#: The old names, still read (with a DeprecationWarning) so that existing calls, scripts and settings work.
OLD_ZIP_PASSWORD = "encryption_key"
OLD_ZIP_PASSWORD_FLAG = "--encryption-key"
OLD_ZIP_PASSWORD_ENV = "UCI_EXHAUST_ENCRYPTION_KEY"

Call = TypeVar("Call", bound=Callable[..., Any])


def warn_renamed(old: str, new: str, *, stacklevel: int = 2) -> None:
    """Warn that ``old`` is deprecated and name ``new``; ``stacklevel`` counts from the caller."""
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=stacklevel + 1)


def one_of(
    new: str, value: str | None, old: str, old_value: str | None, *, stacklevel: int = 2
) -> str | None:
    """``value``, or ``old_value`` given under the old name ``old`` (with a DeprecationWarning).

    :raises ValueError: both are given and differ (which one was meant cannot be told).
    """
    if old_value is None:
        return value
    warn_renamed(old, new, stacklevel=stacklevel + 1)
    if value is not None and value != old_value:
        raise ValueError(f"{new}: given twice, also as {old} (its deprecated name) with another value")
    return old_value


def renamed_keyword(old: str, new: str) -> Callable[[Call], Call]:
    """Let the decorated function (or class, through its ``__init__``) take keyword ``old`` as ``new``,
    with a DeprecationWarning pointing at the caller."""

    def decorate(target: Call) -> Call:
        function = target.__init__ if isinstance(target, type) else target  # type: ignore[misc]

        @functools.wraps(function)
        def accepting(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                kwargs[new] = one_of(new, kwargs.get(new), old, kwargs.pop(old), stacklevel=2)
            return function(*args, **kwargs)

        if isinstance(target, type):
            target.__init__ = accepting  # type: ignore[misc]
            return target
        return accepting  # type: ignore[return-value]

    return decorate


def zip_password_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``UCI_EXHAUST_ZIP_PASSWORD``, else the deprecated ``UCI_EXHAUST_ENCRYPTION_KEY`` (with a warning);
    ``None`` when neither is set or both are empty."""
    environ = os.environ if environ is None else environ
    value = environ.get(ZIP_PASSWORD_ENV) or None
    old_value = environ.get(OLD_ZIP_PASSWORD_ENV) or None
    return one_of(ZIP_PASSWORD_ENV, value, OLD_ZIP_PASSWORD_ENV, old_value)
