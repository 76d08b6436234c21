"""Load joined responses and users (arrow record batches) into a warehouse table: SQLite file or PostgreSQL (COPY).

- ``schema``: the tables, their columns and types, the rule for a table's name;
- ``base``: :class:`Warehouse`, the abstract base: one load in one transaction, and the read-back;
- ``sqlite`` and ``postgres``: the two backends (``pg_binary``: PostgreSQL's binary ``COPY`` format);
- ``views``: the analytics views made with the tables;
- ``urls``: warehouse URLs, from an Airflow connection, and shown without a password.

:func:`open_warehouse` connects to one by its URL.
"""

from __future__ import annotations

import sqlite3

from airflow_provider_uci.exhaust.warehouse.base import Warehouse
from airflow_provider_uci.exhaust.warehouse.schema import (
    BATCH_COLUMNS,
    BOOLEAN_COLUMNS,
    INTEGER_COLUMNS,
    RESPONSE_SCHEMA,
    STORED_RESPONSE_COLUMNS,
    TIMESTAMP_COLUMNS,
    LoadResult,
    check_table,
    logical_type,
)
from airflow_provider_uci.exhaust.warehouse.sqlite import SqliteWarehouse
from airflow_provider_uci.exhaust.warehouse.urls import (
    URL_FORMS,
    WarehouseUnavailable,
    one_line,
    redact_url,
    warehouse_url_from_parts,
)
from airflow_provider_uci.extras import require

__all__ = [
    "BATCH_COLUMNS",
    "BOOLEAN_COLUMNS",
    "INTEGER_COLUMNS",
    "RESPONSE_SCHEMA",
    "STORED_RESPONSE_COLUMNS",
    "TIMESTAMP_COLUMNS",
    "URL_FORMS",
    "LoadResult",
    "SqliteWarehouse",
    "Warehouse",
    "WarehouseUnavailable",
    "check_table",
    "logical_type",
    "open_warehouse",
    "redact_url",
    "warehouse_url_from_parts",
]


def open_warehouse(url: str) -> Warehouse:
    """Connect to the warehouse at ``url`` (see :data:`URL_FORMS`); a SQLite file is created if missing.

    :raises WarehouseUnavailable: the server refused or did not answer, or the file cannot be opened.
    :raises MissingExtra: a PostgreSQL URL where the postgres extra (psycopg2) is not installed.
    """
    if isinstance(url, str) and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        try:
            return SqliteWarehouse(url[len("sqlite:///") :], url)
        except (sqlite3.Error, OSError) as exc:
            raise WarehouseUnavailable(
                f"warehouse: cannot open {redact_url(url)}: {one_line(exc, url)}"
            ) from None
    if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")):
        require(["postgres"], "a PostgreSQL warehouse")
        import psycopg2

        from airflow_provider_uci.exhaust.warehouse.postgres import PostgresWarehouse

        try:
            return PostgresWarehouse(url)
        except psycopg2.OperationalError as exc:  # told in one line, without the password
            raise WarehouseUnavailable(
                f"warehouse: cannot connect to {redact_url(url)}: {one_line(exc, url)}"
            ) from None
        except psycopg2.ProgrammingError as exc:  # an invalid connection string
            raise ValueError(
                f"warehouse: {redact_url(url)} is not a valid PostgreSQL URL: {one_line(exc, url)}"
            ) from None
    shown = redact_url(url) if isinstance(url, str) else repr(url)
    raise ValueError(f"warehouse: expected {URL_FORMS}, got {shown!r}")
