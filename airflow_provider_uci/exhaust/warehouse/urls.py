"""Warehouse URLs: the forms accepted, one built from an Airflow connection, and one shown without its password."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or "
    "postgresql://user:password@host:port/database (or postgres://...)"
)


#: ``scheme://user:`` and what follows up to the last ``@``: the password, whatever it holds (``?``, ``#``,
#: ``/`` or ``@`` included), as the URL's reader must take it.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)(.*)@", re.DOTALL)
_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)([^&#]*)")
#: What splits a password that a reader misparses into pieces it may echo (a host, a port, a parameter).
_PIECES = re.compile(r"[/?#@:&=,\[\]]")


def url_password(url: str) -> str | None:
    """The password of ``url``: everything between ``user:`` and the last ``@`` (``None`` without one)."""
    match = _USERINFO.match(url) if isinstance(url, str) else None
    return match.group(2) if match else None


def redact_url(url: str) -> str:
    """``url`` with any password (between ``user:`` and the last ``@``, or a ``password=`` parameter)
    replaced by ``***``."""
    match = _USERINFO.match(url)
    if match:
        url = f"{match.group(1)}***@{url[match.end() :]}"
    return _PASSWORD_PARAMETER.sub(r"\1***", url)


def secret_pieces(url: str) -> list[str]:
    """What of ``url``'s passwords an error may echo, longest first: each password as written and
    percent-decoded, and the pieces a misparsing reader would cut it into (three characters or more)."""
    found = [url_password(url) or ""] + [match.group(2) for match in _PASSWORD_PARAMETER.finditer(url)]
    pieces = set()
    for password in found:
        for form in (password, unquote(password)):
            if form:
                pieces.add(form)
                pieces.update(piece for piece in _PIECES.split(form) if len(piece) >= 3)
    return sorted(pieces, key=len, reverse=True)


def warehouse_url_from_parts(
    conn_type: str | None,
    host: str | None,
    login: str | None,
    password: str | None,
    schema: str | None,
    port: int | str | None,
) -> str:
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
    raise ValueError(
        f"conn_type: a warehouse connection must be of type sqlite, postgres or postgresql, got {conn_type!r}"
    )


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be reached or opened; the message names it without its password."""


def one_line(exc: BaseException, url: str) -> str:
    """An error's text on one line, with the URL and its password (if any, or any piece of it) left out."""
    text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip()) or type(exc).__name__
    text = text.replace(url, redact_url(url))
    for piece in secret_pieces(url):
        text = text.replace(piece, "***")
    return text


def postgres_connect_args(url: str) -> dict[str, str]:
    """psycopg2's keyword arguments for a ``postgresql://`` URL, read as :func:`redact_url` reads it: the
    credentials end at the last ``@``, so a password holding ``/``, ``?``, ``#`` or ``@`` is not misread
    as a host, a port or a parameter (which libpq would then echo in its error).

    :raises ValueError: a port that is not a number (the URL is not shown).
    """
    rest = url.split("://", 1)[1]
    credentials, _, place = rest.rpartition("@")
    user, _, password = credentials.partition(":")
    if "/" in place.split("?", 1)[0]:  # host[:port]/database[?parameters]
        netloc, _, tail = place.partition("/")
        database, _, query = tail.partition("?")
    else:  # host[:port][?parameters]
        netloc, _, query = place.partition("?")
        database = ""
    hosts, ports = [], []
    for item in netloc.split(",") if netloc else []:
        if item.startswith("["):
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(
                "warehouse: the URL's port must be a number from 1 to 65535 (the URL is not shown: what "
                "stands where its port should may be a password)"
            )
        hosts.append(unquote(host))
        ports.append(port)
    args = dict(parse_qsl(query, keep_blank_values=True))
    for key, value in (
        ("user", unquote(user)),
        ("password", unquote(password)),
        ("dbname", unquote(database)),
        ("host", ",".join(hosts)),
        ("port", ",".join(ports) if any(ports) else ""),
    ):
        if value:
            args[key] = value
    return args
