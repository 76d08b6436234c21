"""Warehouse URLs: the forms accepted, one built from an Airflow connection, and one shown without its password."""

from __future__ import annotations

import re
from urllib.parse import quote

URL_FORMS = ("sqlite:///relative/path.db, sqlite:////absolute/path.db or "
             "postgresql://user:password@host:port/database (or postgres://...)")


def redact_url(url: str) -> str:
    """``url`` with any password (``user:password@`` or a ``password=`` parameter) replaced by ``***``."""
    url = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)[^?#]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def warehouse_url_from_parts(conn_type: str | None, host: str | None, login: str | None, password: str | None,
                             schema: str | None, port: int | str | None) -> str:
    """Build a warehouse URL from an Airflow connection's fields.

    :param conn_type: ``sqlite`` (``host`` is the file path; a ``sqlite:///path`` URI puts it in ``schema``)
        or ``postgres`` / ``postgresql``
        (``schema`` is the database, as in Airflow's Postgres connection).
    """
    kind = (conn_type or "").lower()
    if kind == "sqlite":
        host = host or schema
        if not host:
            raise ValueError("host: a sqlite warehouse connection needs the database file path as its host")
        return f"sqlite:///{host}"
    if kind in ("postgres", "postgresql"):
        user = quote(login or "", safe="")
        credentials = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
        where = host or ""
        if ":" in where and not where.startswith("["):
            where = f"[{where}]"
        if port not in (None, ""):
            if not str(port).isdigit():
                raise ValueError(f"port: expected a number, got {port!r}")
            where = f"{where}:{port}"
        return f"postgresql://{credentials}{where}/{quote(schema or '', safe='')}"
    raise ValueError(f"conn_type: a warehouse connection must be of type sqlite, postgres or postgresql, "
                     f"got {conn_type!r}")


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be reached or opened; the message names it without its password."""



def one_line(exc: BaseException, url: str) -> str:
    """An error's text on one line, with the URL and its password (if any) left out."""
    text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or type(exc).__name__
    text = text.replace(url, redact_url(url))
    password = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:([^@/?#]+)@", url)
    if password:
        text = text.replace(password.group(1), "***")
    return text
