"""The warehouse's tables: their names, columns and column types, and what a load is given and returns.

A responses table ``<table>`` has side tables ``<table>_users`` and ``<table>_loads``, the index
``<table>_bot_day`` and the analytics views (``exhaust.warehouse.views``); :func:`check_table` holds
the rule for the name. Every backend spells the column types of :func:`logical_type` its own way.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from airflow_provider_uci.exhaust.records import KEY_FIELDS, RESPONSE_TABLE_COLUMNS, USER_TABLE_COLUMNS

TABLE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")  # matched whole (fullmatch: no trailing newline)
#: Prefixes of the databases' own tables: SQLite's ``sqlite_master``..., PostgreSQL's ``pg_catalog``...
RESERVED_PREFIXES = ("sqlite_", "pg_")
#: What a responses table's side tables and index are named with, or reserved for: ``<table>_users``...
SIDE_SUFFIXES = (
    "_users",
    "_loads",
    "_bot_day",
    "_daily",
    "_question_stats",
    "_sessions",
    "_completion",
    "_funnel",
    "_answer_shares",
)
URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or "
    "postgresql://user:password@host:port/database (or postgres://...)"
)
AUDIT_FIELDS = ("response_request_id", "private_request_id", "rejected")
USER_KEY = ("conversation_id", "device_uuid")
INTEGER_COLUMNS = frozenset({"question_duration", "question_score", "question_max_score"})
BOOLEAN_COLUMNS = frozenset({"eof", "consented"})
TIMESTAMP_COLUMNS = frozenset({"event_timestamp", "at_timestamp"})
DATE_COLUMNS = frozenset({"sync_date"})
#: What a load is given of each response (arrow record batches): the joined columns, then the row's IST sync day.
BATCH_COLUMNS = (*RESPONSE_TABLE_COLUMNS, "sync_date")
#: The responses table: a batch's columns, then the load that wrote the row.
STORED_RESPONSE_COLUMNS = (*BATCH_COLUMNS, "load_id")


def logical_type(column: str) -> str:
    """A column's type, as each backend then spells it: integer, date, boolean, timestamp or text."""
    if column in INTEGER_COLUMNS or column == "load_id":
        return "integer"
    if column in DATE_COLUMNS:
        return "date"
    if column in BOOLEAN_COLUMNS:
        return "boolean"
    return "timestamp" if column in TIMESTAMP_COLUMNS else "text"


#: The response table's columns and their types (lineage shows them as the table's schema).
RESPONSE_SCHEMA = tuple((column, logical_type(column)) for column in STORED_RESPONSE_COLUMNS)


class LoadResult(NamedTuple):
    """What one load did: response rows written, distinct users written, rows of earlier loads replaced."""

    responses: int
    users: int
    replaced: int = 0


class TableSpec(NamedTuple):
    """A table a load writes: its name, its columns in order, and its key."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


def check_table(table: str) -> str:
    """Return ``table`` if a load may write to it and its side tables, else raise naming the rule.

    The rule: a plain identifier (a letter or ``_``, then letters, digits or ``_``) of at most 48
    characters, so that ``<table>_question_stats`` fits PostgreSQL's 63; not named like the databases'
    own tables (``sqlite_...``, ``pg_...``); and not ending like the project's side tables and index
    (:data:`SIDE_SUFFIXES`), which would make it one of another table's.
    """
    if not isinstance(table, str) or not TABLE_PATTERN.fullmatch(table):
        raise ValueError(
            f"table: must be a plain identifier (a letter or _, then up to 47 letters, digits or _), "
            f"got {table!r}"
        )
    lowered = table.lower()
    if lowered.startswith(RESERVED_PREFIXES):
        raise ValueError(
            f"table: must not start with {' or '.join(RESERVED_PREFIXES)}, which name the databases' "
            f"own tables, got {table!r}"
        )
    if lowered.endswith(SIDE_SUFFIXES):
        suffix = next(end for end in SIDE_SUFFIXES if lowered.endswith(end))
        raise ValueError(
            f"table: must not end in {', '.join(SIDE_SUFFIXES)}, the names of another table's side "
            f"tables (here {table[: -len(suffix)]!r}'s {suffix}), got {table!r}"
        )
    return table


def table_specs(table: str) -> tuple[TableSpec, TableSpec]:
    """The responses table ``table`` and its users table, once the name is checked."""
    check_table(table)
    return (
        TableSpec(table, STORED_RESPONSE_COLUMNS, KEY_FIELDS),
        TableSpec(f"{table}_users", USER_TABLE_COLUMNS, USER_KEY),
    )


def quote_name(name: str) -> str:
    """A checked table, index or view name, quoted for SQL (both databases)."""
    return f'"{name}"'


def day_index_name(table: str) -> str:
    """The quoted name of the index a load finds the days it replaces by."""
    return quote_name(f"{table}_bot_day")
