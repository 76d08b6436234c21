"""The package's optional parts (extras), and the one line that says which to install when one is missing.

The base install runs the ``uci_exhaust`` DAG (scheduler, triggerer, worker). The emulator, the
report and its pandas frames, a PostgreSQL warehouse and OpenLineage events each need an extra; the
modules of each are imported only where they are used, so that a part whose extra is missing fails
when it is asked for, in one line naming the extra, and never when the DAG is parsed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence

DISTRIBUTION = "airflow-provider-uci"

#: The modules each extra brings that the package imports (``pyproject.toml``'s optional dependencies).
EXTRAS: dict[str, tuple[str, ...]] = {
    "emulator": ("fastapi", "starlette", "uvicorn", "croniter", "cryptography"),
    "analytics": ("matplotlib", "pandas"),
    "postgres": ("psycopg2",),
    "openlineage": ("airflow.providers.openlineage",),
}


def install_line(extras: Sequence[str]) -> str:
    """``needs the emulator extra: pip install 'airflow-provider-uci[emulator]'``, for one extra or more."""
    names = " and ".join(extras)
    noun = "extra" if len(extras) == 1 else "extras"
    return f"needs the {names} {noun}: pip install '{DISTRIBUTION}[{','.join(extras)}]'"


class MissingExtra(ImportError):
    """A part of the package needs an extra that is not installed; the message is one line that says
    which extra to install.

    :param extras: the extras that are missing.
    :param needed_by: what needs them (``a PostgreSQL warehouse``), or empty when the caller says it.
    """

    def __init__(self, extras: Sequence[str], needed_by: str = "") -> None:
        self.extras = tuple(extras)
        self.needed_by = needed_by
        line = install_line(self.extras)
        super().__init__(f"{needed_by} {line}" if needed_by else line)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, found without importing it (a parent package is imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or one that is no package
        return False


def missing(extras: Iterable[str], modules: Iterable[str] | None = None) -> list[str]:
    """Those of ``extras`` whose modules are not all installed.

    :param modules: the modules the caller needs, when it needs only some of its extras' (the report
        draws with matplotlib but reads no pandas frame); by default every module of each extra.
    """
    wanted = None if modules is None else set(modules)
    return [
        extra
        for extra in extras
        if not all(installed(module) for module in EXTRAS[extra] if wanted is None or module in wanted)
    ]


def require(extras: Iterable[str], needed_by: str = "", modules: Iterable[str] | None = None) -> None:
    """Raise :class:`MissingExtra` naming those of ``extras`` that are not installed (see :func:`missing`)."""
    absent = missing(extras, modules)
    if absent:
        raise MissingExtra(absent, needed_by)


def extra_for(exc: ImportError) -> str | None:
    """The extra that brings the module whose import failed with ``exc``, if one does."""
    name = getattr(exc, "name", None) or ""
    for extra, modules in EXTRAS.items():
        if any(name == module or name.startswith(f"{module}.") for module in modules):
            return extra
    return None
