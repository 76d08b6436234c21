"""The DAG's load keys ``hashed`` phones with the Airflow Variable ``uci_exhaust_phone_hash_secret`` (else the
warehouse connection's extra ``phone_hash_secret``), read at run time: no secret, no ``hashed`` load."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_uci.models import ExhaustFatalError
from airflow_provider_uci.operators.load import ExhaustLoader, LoadOptions
from tests.benchmarks.hostile_input import TARA_PRIVATE, TARA_RESPONSE

BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
PHONES = ("phone:8148413883", "phone:7597185708")
COPIES = {
    "uci-response-exhaust": {"csv": str(TARA_RESPONSE)},
    "uci-private-exhaust": {"csv": str(TARA_PRIVATE)},
}


def loader(warehouse_conn_id: str | None) -> ExhaustLoader:
    options = LoadOptions(
        dag_id="uci_exhaust",
        conversation_id=BOT,
        from_date="2022-06-21",
        to_date="2022-06-21",
        warehouse_conn_id=warehouse_conn_id,
        table="uci_responses",
        phone_numbers="hashed",
        max_rejects=0,
        uci_exhaust_conn_id=None,
        wasb_conn_id="wasb_default",
    )
    return ExhaustLoader(options, logging.getLogger("test"))


def phones(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        found = sorted(row[0] for row in conn.execute("SELECT phone FROM uci_responses_users"))
    conn.close()
    return found


def keyed(secret: str) -> list[str]:
    return sorted(hmac.new(secret.encode(), phone.encode(), hashlib.sha256).hexdigest() for phone in PHONES)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("UCI_EXHAUST_PHONE_HASH_SECRET", raising=False)
    return tmp_path


def test_the_variable_keys_the_hash(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "variable-secret-0123456789abcdef"
    monkeypatch.setenv("AIRFLOW_VAR_UCI_EXHAUST_PHONE_HASH_SECRET", secret)
    loader(None).load({"run_id": "manual__1"}, COPIES)
    assert phones(home / "uci-exhaust" / "warehouse.db") == keyed(secret)


def test_the_warehouse_connection_extra_keys_the_hash(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "connection-secret-0123456789abcdef"
    database = home / "w.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_UCI_WAREHOUSE_TEST",
        json.dumps({"conn_type": "sqlite", "host": str(database), "extra": {"phone_hash_secret": secret}}),
    )
    loader("uci_warehouse_test").load({"run_id": "manual__1"}, COPIES)
    assert phones(database) == keyed(secret)


def test_without_a_secret_hashed_fails_the_task_saying_where_to_set_one(home: Path) -> None:
    with pytest.raises(
        ExhaustFatalError,
        match=r"phone_hash_secret: phone_numbers=hashed needs a secret .*uci_exhaust_phone_hash_secret",
    ):
        loader(None).load({"run_id": "manual__1"}, COPIES)
