"""Personal data at rest: reject files store phones only as the load does, every file that may hold
personal data is created 0600 in folders made 0700, and the decrypted private CSV never outlives the
load: not after a failure, not after SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_uci.emulator.crypto import zip_single_file
from airflow_provider_uci.exhaust.at_rest import private_folder
from airflow_provider_uci.exhaust.load import RejectLimitExceeded, load_exhaust
from airflow_provider_uci.exhaust.private_zip import open_private_zip
from airflow_provider_uci.exhaust.safe_files import create_private
from tests.benchmarks.hostile_input import TARA_PRIVATE, TARA_RESPONSE, table_state, uci_exhaust
from tests.support.phones import hashed as keyed_hash

BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
PHONE = "phone:5550001111"
OTHER_PHONE = "phone:5550002222"
ZIP_KEY = "rest-key-4c1d"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask (022), under which files are made world-readable unless the code says otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def broken_private(path: Path) -> Path:
    """The Tara sample's users, and two broken records with phones: no Device UUID; one value too many."""
    text = TARA_PRIVATE.read_text(encoding="utf-8")
    path.write_text(
        text
        + f"{BOT},Global Tara Bot,{PHONE},enc1=,\n"
        + f"{BOT},Global Tara Bot,{OTHER_PHONE},enc2=,d2,extra\n",
        encoding="utf-8",
        newline="",
    )
    return path


@pytest.mark.parametrize("phones", ["plain", "hashed", "none"])
def test_reject_files_hold_phone_numbers_only_as_the_load_stores_them(phones: str, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    summary = load_exhaust(
        response_csv=TARA_RESPONSE,
        private=broken_private(tmp_path / "users.csv"),
        warehouse_url=f"sqlite:///{tmp_path}/w.db",
        phone_numbers=phones,
        max_rejects=2,
        reject_path=rejects,
    )

    assert summary.rejected == 2
    text = rejects.read_text(encoding="utf-8")
    no_device, too_wide = [json.loads(line) for line in text.splitlines()]
    hashed = keyed_hash(PHONE)
    if phones == "plain":
        assert PHONE in no_device["values"] and OTHER_PHONE in too_wide["values"]
        return
    for phone in (PHONE, OTHER_PHONE, OTHER_PHONE.removeprefix("phone:"), PHONE.removeprefix("phone:")):
        assert phone not in text
    assert no_device["values"][2] == (hashed if phones == "hashed" else None)
    assert no_device["values"][0] == BOT and no_device["values"][3] == "enc1="
    assert too_wide["values"] is None
    assert too_wide["values_withheld"].startswith(
        f"phone_numbers={phones}: the record's values cannot be told apart"
    )
    assert (no_device["line"], too_wide["line"]) == (4, 5)


def test_a_reject_file_and_the_folders_made_for_it_are_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    rejects = shared / "new" / "rejects" / "load.jsonl"
    with pytest.raises(RejectLimitExceeded):
        load_exhaust(
            response_csv=TARA_RESPONSE,
            private=broken_private(tmp_path / "users.csv"),
            warehouse_url=f"sqlite:///{tmp_path}/w.db",
            reject_path=rejects,
        )
    assert mode(rejects) == 0o600
    assert mode(rejects.parent) == 0o700 and mode(rejects.parent.parent) == 0o700
    assert mode(shared) == 0o755, "a folder that was there is left as it was"


def test_the_csv_taken_out_of_the_private_zip_is_private(tmp_path: Path) -> None:
    archive = tmp_path / "users.zip"
    zip_single_file(TARA_PRIVATE, archive, "users.csv", ZIP_KEY)
    (tmp_path / "there").mkdir()
    (tmp_path / "there" / "users.csv").write_text("old")
    (tmp_path / "there" / "users.csv").chmod(0o644)

    for folder in (tmp_path / "made" / "here", tmp_path / "there"):
        extracted = open_private_zip(archive, ZIP_KEY, folder)
        assert extracted.read_bytes() == TARA_PRIVATE.read_bytes()
        assert mode(extracted) == 0o600
    assert mode(tmp_path / "made") == mode(tmp_path / "made" / "here") == 0o700


def test_private_files_and_folders_are_made_with_owner_only_modes(tmp_path: Path) -> None:
    folder = private_folder(tmp_path / "a" / "b")
    with create_private(folder / "f.txt", "w", encoding="utf-8") as handle:
        handle.write("x")
    assert (mode(tmp_path / "a"), mode(folder), mode(folder / "f.txt")) == (0o700, 0o700, 0o600)
    (folder / "f.txt").chmod(0o666)
    with create_private(folder / "f.txt") as handle:
        handle.write(b"y")
    assert mode(folder / "f.txt") == 0o600 and (folder / "f.txt").read_bytes() == b"y"
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file: exists and is not a folder"):
        private_folder(tmp_path / "file")


def loads_into(tmp_path: Path) -> tuple[str, Path, Path]:
    """A SQLite warehouse holding the Tara sample, the sample's users as an encrypted zip, and a TMPDIR."""
    database = tmp_path / "w.db"
    url = f"sqlite:///{database}"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
    archive = tmp_path / "users.zip"
    zip_single_file(TARA_PRIVATE, archive, "users.csv", ZIP_KEY)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    return url, archive, scratch


def test_a_failed_load_leaves_no_decrypted_file(tmp_path: Path) -> None:
    url, archive, scratch = loads_into(tmp_path)
    before = table_state(tmp_path / "w.db")
    response = tmp_path / "response.csv"
    response.write_text(
        TARA_RESPONSE.read_text(encoding="utf-8").replace(',ftp,"","",0,1,1,', ',ftp,"","",x,1,1,', 1),
        encoding="utf-8",
        newline="",
    )

    done = subprocess.run(
        [
            *uci_exhaust(),
            "load",
            "--response",
            str(response),
            "--private",
            str(archive),
            "--encryption-key",
            ZIP_KEY,
            "--warehouse",
            url,
            "--rejects",
            str(tmp_path / "r.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(scratch)},
    )

    assert done.returncode == 2 and "max_rejects=0" in done.stderr
    assert list(scratch.iterdir()) == []
    assert table_state(tmp_path / "w.db") == before


def test_sigterm_during_a_load_removes_the_decrypted_file_and_rolls_back(tmp_path: Path) -> None:
    """The load is held at its first write (another connection holds SQLite's write lock), after the zip
    was opened; SIGTERM then ends it, rolled back, without its decrypted CSV left behind."""
    url, archive, scratch = loads_into(tmp_path)
    before = table_state(tmp_path / "w.db")
    holder = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    load = subprocess.Popen(
        [
            *uci_exhaust(),
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--private",
            str(archive),
            "--encryption-key",
            ZIP_KEY,
            "--warehouse",
            url,
            "--rejects",
            str(tmp_path / "r.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    try:
        deadline = time.monotonic() + 60
        while not list(scratch.glob("uci-load-*/users.csv")):
            assert load.poll() is None, load.communicate()
            assert time.monotonic() < deadline, "the load never opened the zip"
            time.sleep(0.05)
        time.sleep(0.5)  # into the wait for the write lock
        load.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        holder.execute("ROLLBACK")  # the load goes on from its wait, and meets the signal
        _out, err = load.communicate(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
        holder.close()

    assert load.returncode == -signal.SIGTERM, (load.returncode, err)
    assert "Traceback" not in err
    assert list(scratch.iterdir()) == []
    assert table_state(tmp_path / "w.db") == before


def test_the_sigterm_handler_is_set_only_while_a_load_runs(tmp_path: Path) -> None:
    code = (
        "import signal, sys; from pathlib import Path; from airflow_provider_uci.exhaust.load import load_exhaust\n"
        "seen = []\n"
        "signal.signal(signal.SIGTERM, lambda *_: seen.append(1))\n"
        "handler = signal.getsignal(signal.SIGTERM)\n"
        f"load_exhaust(response_csv=Path({str(TARA_RESPONSE)!r}), private=Path({str(TARA_PRIVATE)!r}), "
        f"warehouse_url='sqlite:///{tmp_path}/w.db')\n"
        "assert signal.getsignal(signal.SIGTERM) is handler\n"
        "signal.raise_signal(signal.SIGTERM)\n"
        "print(seen)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1]"
