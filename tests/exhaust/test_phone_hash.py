"""``hashed`` phone numbers are keyed (HMAC-SHA256 under a secret), refused without a secret, and never mixed in
one table with plain numbers, another secret's hashes or the unkeyed SHA-256 of earlier versions.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.benchmarks.hostile_input import TARA_PRIVATE, TARA_RESPONSE

PHONES = ("phone:8148413883", "phone:7597185708")
SECRET = "k3yed-phone-hash-secret-0123456789"
OTHER_SECRET = "another-phone-hash-secret-9876543210"


@pytest.fixture(autouse=True)
def no_secret_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UCI_EXHAUST_PHONE_HASH_SECRET", raising=False)


def stored_phones(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        phones = sorted(row[0] for row in conn.execute("SELECT phone FROM uci_responses_users") if row[0])
    conn.close()
    return phones


def load(database: Path, mode: str, secret: str | None = None) -> None:
    load_exhaust(
        response_csv=TARA_RESPONSE,
        private=TARA_PRIVATE,
        warehouse_url=f"sqlite:///{database}",
        phone_numbers=mode,
        phone_hash_secret=secret,
    )


def test_hashed_phones_are_hmac_sha256_under_the_secret(tmp_path: Path) -> None:
    load(tmp_path / "w.db", "hashed", SECRET)
    expected = sorted(
        hmac.new(SECRET.encode(), phone.encode(), hashlib.sha256).hexdigest() for phone in PHONES
    )
    assert stored_phones(tmp_path / "w.db") == expected
    unkeyed = {hashlib.sha256(phone.encode()).hexdigest() for phone in PHONES}
    assert not unkeyed & set(stored_phones(tmp_path / "w.db"))
    with sqlite3.connect(tmp_path / "w.db") as conn:
        joined = {row[0] for row in conn.execute("SELECT user_phone FROM uci_responses")}
    conn.close()
    assert joined <= set(expected) and joined


def test_the_secret_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UCI_EXHAUST_PHONE_HASH_SECRET", SECRET)
    load(tmp_path / "w.db", "hashed")
    assert stored_phones(tmp_path / "w.db") == sorted(
        hmac.new(SECRET.encode(), phone.encode(), hashlib.sha256).hexdigest() for phone in PHONES
    )


@pytest.mark.parametrize(
    ("secret", "rule"),
    [(None, "phone_numbers=hashed needs a secret"), ("short", "must be at least 16 characters")],
)
def test_hashed_without_a_usable_secret_is_refused_before_anything_is_written(
    secret: str | None, rule: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=rf"^phone_hash_secret: .*{rule}"):
        load(tmp_path / "w.db", "hashed", secret)
    assert not (tmp_path / "w.db").exists()


def test_a_table_keeps_one_way_of_storing_phones(tmp_path: Path) -> None:
    database = tmp_path / "w.db"
    load(database, "hashed", SECRET)
    load(database, "hashed", SECRET)  # the same secret: the same hashes, a rerun
    load(database, "none")  # stores no phone: mixes with anything
    before = stored_phones(database)

    with pytest.raises(
        ValueError,
        match=r"^phone_numbers: uci_responses holds phone numbers stored as HMAC-SHA256 "
        r"hashes under the secret with key id [0-9a-f]{16}, and this load would store "
        r"them as HMAC-SHA256 hashes under the secret with key id",
    ):
        load(database, "hashed", OTHER_SECRET)
    with pytest.raises(ValueError, match=r"and this load would store them as plain numbers"):
        load(database, "plain")
    assert stored_phones(database) == before
    with open_warehouse(f"sqlite:///{database}") as warehouse:
        assert len(warehouse.loads("uci_responses")) == 3
    assert SECRET not in database.read_bytes().decode("latin-1")


def test_a_table_of_unkeyed_hashes_refuses_keyed_ones_until_they_are_removed(tmp_path: Path) -> None:
    """A table made by an earlier version: its ``_loads`` has no ``phone_numbers`` column and its users hold the
    unkeyed SHA-256 of each phone."""
    database = tmp_path / "w.db"
    load(database, "plain")
    with sqlite3.connect(database) as conn:
        for phone in PHONES:
            conn.execute(
                "UPDATE uci_responses_users SET phone = ? WHERE phone = ?",
                (hashlib.sha256(phone.encode()).hexdigest(), phone),
            )
        conn.execute("ALTER TABLE uci_responses_loads DROP COLUMN phone_numbers")
    conn.close()

    with pytest.raises(
        ValueError,
        match=r"^phone_numbers: uci_responses_users holds phone numbers hashed with the "
        r"unkeyed SHA-256 .*UPDATE uci_responses_users SET phone = NULL",
    ):
        load(database, "hashed", SECRET)

    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE uci_responses_users SET phone = NULL")
        conn.execute("UPDATE uci_responses SET user_phone = NULL")
    conn.close()
    load(database, "hashed", SECRET)
    load(database, "hashed", SECRET)  # its own hashes are not taken for unkeyed ones
    assert len(stored_phones(database)) == 2
