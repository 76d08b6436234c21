"""UCI's own tables that the exhaust jobs read (docs/service-contract.md §3.2, §3.4), in SQLite.

``bot`` comes from the UCI conversation database; ``users``, ``user_registrations`` and
``identities`` from FusionAuth. ``users.data`` is FusionAuth's JSON text.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DDL = """
CREATE TABLE IF NOT EXISTS bot (
    id TEXT PRIMARY KEY, name TEXT, "ownerOrgID" TEXT, "startDate" TEXT, "endDate" TEXT
);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, data TEXT);
CREATE TABLE IF NOT EXISTS user_registrations (users_id TEXT, applications_id TEXT);
CREATE INDEX IF NOT EXISTS user_registrations_app ON user_registrations (applications_id);
CREATE TABLE IF NOT EXISTS identities (users_id TEXT, username TEXT);
CREATE INDEX IF NOT EXISTS identities_user ON identities (users_id);
"""


@dataclass(frozen=True)
class Bot:
    id: str
    name: str
    owner_org_id: str
    start_date: str | None
    end_date: str | None


def canonical_uuid(text: str) -> str:
    """A uuid in PostgreSQL's output form (lower case, dashed), as its uuid comparison sees it."""
    try:
        return str(uuid.UUID(text.strip("{}")))
    except ValueError:
        return text


class UserDataError(ValueError):
    """A ``users.data`` value is not JSON."""


def consent_at(data: str | None, path: tuple[str, ...]) -> bool:
    """Read a consent flag from ``users.data`` at ``path``; missing or null means consent (true).

    :raises UserDataError: when ``data`` is not JSON.
    """
    if data is None or data == "":
        return True
    try:
        value: Any = json.loads(data)
    except ValueError as exc:
        raise UserDataError(f"Unexpected character in users.data: {exc}") from None
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return True
        value = value[key]
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() != "false"
    return bool(value)


#: Where each job reads consent (the two differ in the real code, docs/service-contract.md §3.2 and §3.4).
RESPONSE_CONSENT_PATH = ("device", "consent")
PRIVATE_CONSENT_PATH = ("data", "device", "consent")


class UciDatabase:
    """The four tables in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._conn.executescript(DDL)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UciDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (the seed) --------------------------------------------------------------------

    def add_bots(self, bots: Iterable[Bot]) -> None:
        with self._conn:
            self._conn.executemany(
                'INSERT OR REPLACE INTO bot (id, name, "ownerOrgID", "startDate", "endDate") VALUES (?, ?, ?, ?, ?)',
                [(b.id, b.name, b.owner_org_id, b.start_date, b.end_date) for b in bots],
            )

    def add_users(self, users: Iterable[tuple[str, str | None]]) -> None:
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO users (id, data) VALUES (?, ?)", users)

    def add_registrations(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT INTO user_registrations (users_id, applications_id) VALUES (?, ?)", pairs
            )

    def add_identities(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self._conn:
            self._conn.executemany("INSERT INTO identities (users_id, username) VALUES (?, ?)", pairs)

    # -- reading (the jobs) --------------------------------------------------------------------

    def bot(self, conversation_id: str, channel: str) -> Bot | None:
        """The bot with this id owned by this channel (the job's filter on both)."""
        row = self._conn.execute(
            'SELECT id, name, "ownerOrgID", "startDate", "endDate" FROM bot WHERE lower(id) = lower(?) '
            'AND "ownerOrgID" = ?',
            (canonical_uuid(conversation_id), channel),
        ).fetchone()
        return Bot(*row) if row else None

    def user_data(self) -> Iterator[tuple[str, str | None]]:
        """Every user's id and data."""
        yield from self._conn.execute("SELECT id, data FROM users")

    def private_rows(self, conversation_id: str) -> Iterator[tuple[str, str, str | None, str]]:
        """bot ⨝ registrations ⨝ users ⨝ identities: (applications_id, users.id, users.data, username)."""
        yield from self._conn.execute(
            "SELECT r.applications_id, u.id, u.data, i.username FROM user_registrations r "
            "JOIN users u ON u.id = r.users_id JOIN identities i ON i.users_id = u.id "
            "WHERE lower(r.applications_id) = lower(?) ORDER BY u.id, i.rowid",
            (canonical_uuid(conversation_id),),
        )
