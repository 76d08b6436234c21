"""A warehouse URL's password never reaches an error, whatever it holds: it is everything between ``user:`` and
the last ``@``, and a PostgreSQL URL is read that way too, so no piece of it is misread as a host or a port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_uci.exhaust.warehouse import WarehouseUnavailable, open_warehouse, redact_url
from airflow_provider_uci.exhaust.warehouse.urls import one_line

PASSWORDS = ["S3cret/x9", "S3cret?x9", "S3cret#x9", "S3c@ret#?/x9", "p%40ss%2Fw0rd", "S3cret:x9"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_redact_url_hides_everything_up_to_the_last_at(password: str) -> None:
    url = f"postgresql://loader:{password}@db.example:5432/warehouse?sslmode=require"
    shown = redact_url(url)
    assert shown == "postgresql://loader:***@db.example:5432/warehouse?sslmode=require"
    for piece in ("S3c", "x9", "ret", "w0rd"):
        assert piece not in shown


@pytest.mark.parametrize("password", PASSWORDS)
def test_an_error_never_names_any_piece_of_the_password(password: str) -> None:
    url = f"postgresql://loader:{password}@db.example:5432/warehouse"
    echoed = ValueError(
        f'invalid integer value "{password.split("/")[0]}" for connection option "port"; '
        f'host "{password}" and {url}'
    )
    text = one_line(echoed, url)
    assert "S3c" not in text and "x9" not in text and "w0rd" not in text and "p@ss" not in text


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://loader:S3cret/x9@127.0.0.1:5432/postgres",
        "postgresql://loader:S3cret?x9@127.0.0.1:5432/postgres",
        "postgresql://loader:S3cret#x9@127.0.0.1:5432/postgres",
        "postgresql://loader:S3c@ret@127.0.0.1:1/postgres",
        "postgresql://loader@127.0.0.1:S3cret/postgres",
    ],
)
def test_a_malformed_or_refused_postgresql_url_fails_without_its_password(url: str) -> None:
    with pytest.raises((ValueError, WarehouseUnavailable)) as failed:
        with open_warehouse(url):
            pass
    assert "S3c" not in str(failed.value) and "x9" not in str(failed.value), str(failed.value)


def test_the_cli_prints_no_piece_of_a_misread_password(tmp_path: Path) -> None:
    import subprocess

    from tests.benchmarks.hostile_input import TARA_PRIVATE, TARA_RESPONSE, uci_exhaust

    done = subprocess.run(
        [
            *uci_exhaust(),
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--private",
            str(TARA_PRIVATE),
            "--warehouse",
            "postgresql://loader:S3cret/x9@127.0.0.1:5432/postgres",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (1, 2) and done.stderr.startswith("uci-exhaust: error: ")
    assert "S3c" not in done.stderr + done.stdout and "x9" not in done.stderr + done.stdout
