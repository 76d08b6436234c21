"""One way of storing phones per table: a load refuses to mix plain numbers, keyed hashes of different
secrets, or the unkeyed SHA-256 of earlier versions in one table (their values would not join).

Each load records its scheme in ``<table>_loads.phone_numbers`` (``exhaust.phone_hash.phone_scheme``):
``plain``, ``none`` (stored no phone, whatever was asked: mixes with anything) or ``hmac-sha256:<key id>``. A table made
before the column existed gets it (empty for its earlier loads); a load that would store keyed hashes
into a table whose earlier loads stored 64-hex-digit phones without a recorded scheme (the unkeyed
SHA-256) is refused, with how to move on.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_uci.exhaust.warehouse.schema import quote_name

COLUMN = "phone_numbers"


class PhoneSchemeConflict(ValueError):
    """A load would store phones otherwise than the table holds them; nothing was loaded."""


def ensure_column(warehouse: Any, table: str) -> None:
    """Give ``<table>_loads`` its ``phone_numbers`` column if it was made without one."""
    loads = f"{table}_loads"
    if COLUMN not in warehouse._columns(loads):
        warehouse._execute(f"ALTER TABLE {quote_name(loads)} ADD COLUMN {COLUMN} {warehouse._text}")


def stores_phones(users: Any) -> bool:
    """Whether a load of ``users`` (an arrow table with a ``phone`` column) stores any phone."""
    return bool(users.num_rows > 0 and users.column("phone").null_count < users.num_rows)


def check_scheme(warehouse: Any, table: str, scheme: str) -> None:
    """Raise :class:`PhoneSchemeConflict` if a load storing phones as ``scheme`` would mix schemes in ``table``."""
    if scheme == "none":
        return
    p = warehouse.param
    loads = quote_name(f"{table}_loads")
    earlier = {
        row[0]
        for row in warehouse._query(
            f"SELECT DISTINCT {COLUMN} FROM {loads} WHERE {COLUMN} IS NOT NULL AND {COLUMN} <> {p}", ("none",)
        )
    }
    others = sorted(earlier - {scheme})
    if others:
        raise PhoneSchemeConflict(
            f"phone_numbers: {table} holds phone numbers stored as {_told(others[0])}, and this load would store "
            f"them as {_told(scheme)}; one table keeps one way (a hash under another secret joins nothing), so "
            f"load into another table, or reload the table's bots the same way after emptying it; nothing was "
            "loaded"
        )
    if scheme.startswith("hmac-") and scheme not in earlier and _unkeyed_hashes(warehouse, table):
        raise PhoneSchemeConflict(
            f"phone_numbers: {table}_users holds phone numbers hashed with the unkeyed SHA-256 of earlier versions "
            "(reversible by trying every number); keyed hashes cannot be made of them (the numbers are not kept), "
            f"and mixed they would not join. Load into a new table, or remove the old hashes first (UPDATE "
            f"{table}_users SET phone = NULL; UPDATE {table} SET user_phone = NULL) and reload the bots; nothing "
            "was loaded"
        )


def _unkeyed_hashes(warehouse: Any, table: str) -> bool:
    """Whether the users table holds a phone that looks like a SHA-256 (64 hex digits) stored by a load
    that recorded no scheme."""
    users = quote_name(f"{table}_users")
    if warehouse.backend == "postgres":
        looks = "phone ~ '^[0-9a-f]{64}$'"
    else:
        looks = "length(phone) = 64 AND phone NOT GLOB '*[^0-9a-f]*'"
    untold = warehouse._query(
        f"SELECT count(*) FROM {quote_name(table + '_loads')} WHERE {COLUMN} IS NULL AND users > 0"
    )[0][0]
    return bool(untold) and bool(warehouse._query(f"SELECT 1 FROM {users} WHERE {looks} LIMIT 1"))


def _told(scheme: str) -> str:
    if scheme.startswith("hmac-sha256:"):
        return f"HMAC-SHA256 hashes under the secret with key id {scheme.split(':', 1)[1]}"
    return "plain numbers" if scheme == "plain" else scheme
