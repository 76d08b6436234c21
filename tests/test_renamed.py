"""The zip password's old names (flag, variable, keyword, connection extra) still work, each with a
DeprecationWarning that names the new one; the new names warn nothing.

A load through the old flag and variable, and what the user reads then, is in tests/exhaust/test_load.py.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterator

import pytest

from airflow_provider_uci.cli import build_parser
from airflow_provider_uci.cli_client import secrets_of, zip_password_of
from airflow_provider_uci.exhaust.renamed import OLD_ZIP_PASSWORD_ENV, ZIP_PASSWORD_ENV, zip_password_from_env
from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.hooks.wire import ConnectionSettings
from airflow_provider_uci.models import ExhaustRequest, ExhaustValidationError
from tests.support.connections import set_uci_connection

BOT = "c63b6faa-11a9-4259-b941-11cd2f8446c6"
#: Nothing listens there: these tests build requests and read connections, and send nothing.
NOWHERE = "http://127.0.0.1:9/api"


def read_settings() -> ConnectionSettings:
    """The default connection's settings, as the hooks read them."""
    from airflow.sdk import BaseHook

    return ConnectionSettings.from_connection(BaseHook.get_connection("uci_exhaust_default"))


@pytest.fixture(autouse=True)
def no_zip_password_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in (ZIP_PASSWORD_ENV, OLD_ZIP_PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture
def no_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        yield


def command(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["load", "--warehouse", "sqlite:///unused.db", *flags])


def test_the_old_flag_still_gives_the_zip_password_and_names_the_new_flag() -> None:
    args = command("--encryption-key", "pw-1")
    with pytest.warns(DeprecationWarning, match=r"^--encryption-key is deprecated; use --zip-password$"):
        assert zip_password_of(args) == "pw-1"
    assert "pw-1" in secrets_of(args), "a password given by the old flag is kept out of messages too"


@pytest.mark.usefixtures("no_warning")
def test_the_new_flag_and_variable_warn_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert zip_password_of(command("--zip-password", "pw-2")) == "pw-2"
    monkeypatch.setenv(ZIP_PASSWORD_ENV, "pw-3")
    assert zip_password_of(command()) == "pw-3"
    assert zip_password_of(command("--zip-password", "pw-2")) == "pw-2", "a flag wins over a variable"


def test_the_client_commands_take_the_old_flag_too() -> None:
    args = build_parser().parse_args(
        ["status", "--tag", "t", "--request-id", "r", "--encryption-key", "pw-4"]
    )
    with pytest.warns(DeprecationWarning, match=r"use --zip-password$"):
        assert zip_password_of(args) == "pw-4"


def test_help_shows_the_new_flag_and_variable_only(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("load", "download"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert "--zip-password" in shown and ZIP_PASSWORD_ENV in shown, name
        assert "--encryption-key" not in shown and OLD_ZIP_PASSWORD_ENV not in shown, name


def test_the_old_variable_still_gives_the_zip_password_and_names_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OLD_ZIP_PASSWORD_ENV, "pw-5")
    with pytest.warns(
        DeprecationWarning, match=rf"^{OLD_ZIP_PASSWORD_ENV} is deprecated; use {ZIP_PASSWORD_ENV}$"
    ):
        assert zip_password_from_env() == "pw-5"
    with pytest.warns(DeprecationWarning, match=ZIP_PASSWORD_ENV):
        assert zip_password_of(command()) == "pw-5"
    monkeypatch.setenv(ZIP_PASSWORD_ENV, "pw-5")
    with pytest.warns(DeprecationWarning, match=ZIP_PASSWORD_ENV):
        assert zip_password_from_env() == "pw-5", "both names, one value: taken"


def test_both_names_with_different_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ZIP_PASSWORD_ENV, "pw-6")
    monkeypatch.setenv(OLD_ZIP_PASSWORD_ENV, "pw-7")
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ValueError, match=rf"^{ZIP_PASSWORD_ENV}: given twice") as caught,
    ):
        zip_password_from_env()
    assert "pw-6" not in str(caught.value) and "pw-7" not in str(caught.value)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"^--zip-password: given twice"):
        zip_password_of(command("--zip-password", "pw-6", "--encryption-key", "pw-7"))


def test_a_request_takes_the_old_keyword_and_sends_it_as_encryption_key() -> None:
    fields = {
        "conversation_id": BOT,
        "dataset": "private",
        "start_date": "2022-03-01",
        "end_date": "2022-03-02",
        "tag": "t",
        "channel": "c",
    }
    with pytest.warns(
        DeprecationWarning, match=r"^encryption_key is deprecated; use zip_password$"
    ) as caught:
        request = ExhaustRequest(**fields, encryption_key="pw-8")  # type: ignore[call-arg]
    assert caught[0].filename == __file__, "the warning points at the call"
    assert request == ExhaustRequest(**fields, zip_password="pw-8")
    assert request.validate().body()["request"]["encryptionKey"] == "pw-8"
    assert "pw-8" not in repr(request)


def test_the_hooks_request_for_takes_the_old_keyword(monkeypatch: pytest.MonkeyPatch) -> None:
    set_uci_connection(monkeypatch, NOWHERE, zip_password="from-the-connection")
    hook = UciExhaustHook()
    with pytest.warns(DeprecationWarning, match=r"^encryption_key is deprecated; use zip_password$"):
        request = hook.request_for(BOT, "private", "2022-03-01", "2022-03-02", "t", encryption_key="pw-9")
    assert request.zip_password == "pw-9"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert hook.request_for(BOT, "private", "2022-03-01", "2022-03-02", "t").zip_password == (
            "from-the-connection"
        )


def test_a_connection_with_the_old_extra_still_opens_zips_and_is_asked_to_rename_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_uci_connection(monkeypatch, NOWHERE, extra={"encryption_key": "pw-10"})
    with pytest.warns(DeprecationWarning, match=r"encryption_key is deprecated; use zip_password$"):
        assert read_settings().zip_password == "pw-10"
    set_uci_connection(monkeypatch, NOWHERE, zip_password="pw-11", extra={"encryption_key": "pw-12"})
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ExhaustValidationError, match=r"^zip_password: ") as caught,
    ):
        read_settings()
    assert "pw-11" not in str(caught.value) and "pw-12" not in str(caught.value)
