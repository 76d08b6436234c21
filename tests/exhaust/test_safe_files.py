"""Every file is created safely and privately: never through a link planted at a fixed name, never over what is
not a regular file, 0600 in folders made 0700; and the scratch folders of killed runs do not stay.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_provider_uci.emulator.crypto import zip_single_file
from airflow_provider_uci.exhaust.download import download
from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.private_zip import open_private_zip
from tests.benchmarks.hostile_input import TARA_PRIVATE, TARA_RESPONSE

BOT = "c387e983-f87b-4471-aef5-c31634fd1433"
VICTIM_TEXT = "export PATH=/usr/bin\n"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim" / ".bashrc"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    path.chmod(0o644)
    return path


def untouched(path: Path) -> bool:
    return path.read_text() == VICTIM_TEXT and mode(path) == 0o644


def broken_response(tmp_path: Path) -> Path:
    response = tmp_path / "response.csv"
    text = TARA_RESPONSE.read_text(encoding="utf-8")
    response.write_text(text.replace(",0,1,1,", ",zero,1,1,", 1), encoding="utf-8", newline="")
    return response


# -- reject files ----------------------------------------------------------------------------------------


def test_a_link_planted_at_the_reject_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = victim(tmp_path)
    rejects = tmp_path / "response.rejects.jsonl"
    rejects.symlink_to(target)
    with pytest.raises(ValueError, match=r"^rejects: .*response.rejects.jsonl' is a symbolic link"):
        load_exhaust(
            response_csv=broken_response(tmp_path),
            private=TARA_PRIVATE,
            warehouse_url=f"sqlite:///{tmp_path}/w.db",
            max_rejects=5,
            reject_path=rejects,
        )
    assert untouched(target) and rejects.is_symlink()


def test_a_fifo_at_the_reject_file_is_refused(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    os.mkfifo(rejects)
    with pytest.raises(ValueError, match=r"^rejects: .* is a FIFO"):
        load_exhaust(
            response_csv=broken_response(tmp_path),
            private=TARA_PRIVATE,
            warehouse_url=f"sqlite:///{tmp_path}/w.db",
            max_rejects=5,
            reject_path=rejects,
        )
    assert stat.S_ISFIFO(os.lstat(rejects).st_mode)


def test_an_earlier_reject_file_is_replaced_by_a_new_private_one(tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_text("old\n")
    rejects.chmod(0o644)
    linked = tmp_path / "hard-link"
    os.link(rejects, linked)  # a hard link to the old file keeps the old text: the new file is a new inode
    load_exhaust(
        response_csv=broken_response(tmp_path),
        private=TARA_PRIVATE,
        warehouse_url=f"sqlite:///{tmp_path}/w.db",
        max_rejects=5,
        reject_path=rejects,
    )
    (entry,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert entry["reason"].startswith("question_duration") and mode(rejects) == 0o600
    assert linked.read_text() == "old\n"


# -- the private zip's CSV ---------------------------------------------------------------------------------


def test_a_link_planted_beside_the_unzipped_csv_is_not_followed(tmp_path: Path) -> None:
    target = victim(tmp_path)
    archive = tmp_path / "uci-private-exhaust.zip"
    zip_single_file(TARA_PRIVATE, archive, "users.csv", "key-1")
    out = tmp_path / "out"
    out.mkdir()
    (out / "users.csv.partial").symlink_to(target)  # the fixed scratch name of earlier versions

    extracted = open_private_zip(archive, "key-1", out)

    assert untouched(target)
    assert extracted.read_bytes() == TARA_PRIVATE.read_bytes() and mode(extracted) == 0o600


@pytest.mark.parametrize("kind", ["link", "fifo", "folder"])
def test_the_unzipped_csv_is_not_written_over_what_is_not_a_file(kind: str, tmp_path: Path) -> None:
    target = victim(tmp_path)
    archive = tmp_path / "uci-private-exhaust.zip"
    zip_single_file(TARA_PRIVATE, archive, "users.csv", None)
    out = tmp_path / "out"
    out.mkdir()
    planted = out / "users.csv"
    {
        "link": lambda: planted.symlink_to(target),
        "fifo": lambda: os.mkfifo(planted),
        "folder": lambda: planted.mkdir(),
    }[kind]()

    with pytest.raises(ValueError, match=r"^the private zip's CSV: .*users.csv' is a"):
        open_private_zip(archive, None, out)

    assert untouched(target) and sorted(path.name for path in out.iterdir()) == ["users.csv"]


# -- downloads ---------------------------------------------------------------------------------------------


@pytest.fixture
def file_server() -> Iterator[str]:
    """A plain HTTP server that answers every GET with the Tara sample."""
    body = TARA_RESPONSE.read_bytes()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/file.csv"
    finally:
        server.shutdown()
        server.server_close()


def test_a_download_follows_no_link_planted_at_its_scratch_name(file_server: str, tmp_path: Path) -> None:
    target = victim(tmp_path)
    out = tmp_path / "files"
    out.mkdir()
    (out / "uci-response-exhaust.csv.partial").symlink_to(target)

    size = download(lambda: [file_server], 0, out / "uci-response-exhaust.csv")

    assert untouched(target)
    saved = out / "uci-response-exhaust.csv"
    assert (
        size == saved.stat().st_size
        and saved.read_bytes() == TARA_RESPONSE.read_bytes()
        and mode(saved) == 0o600
    )


def test_a_download_over_a_link_is_refused(file_server: str, tmp_path: Path) -> None:
    target = victim(tmp_path)
    link = tmp_path / "uci-response-exhaust.csv"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="is a symbolic link"):
        download(lambda: [file_server], 0, link)
    assert untouched(target) and link.is_symlink()
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial")] == []


# -- the SQLite warehouse ------------------------------------------------------------------------------------


def test_a_new_sqlite_warehouse_is_private(tmp_path: Path) -> None:
    database = tmp_path / "made" / "here" / "warehouse.db"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=f"sqlite:///{database}")
    assert mode(database) == 0o600
    assert [mode(folder) for folder in (database.parent, database.parent.parent)] == [0o700, 0o700]
    for extra in (database.with_name("warehouse.db-wal"), database.with_name("warehouse.db-shm")):
        assert not extra.exists() or mode(extra) == 0o600


# -- scratch folders of killed runs --------------------------------------------------------------------------

HOLD = """
import sys, time
from airflow_provider_uci.exhaust.at_rest import scratch_folder
with scratch_folder("uci-load-") as folder:
    (folder / "users.csv").write_text("phone:5550001111")
    print(folder, flush=True)
    time.sleep(600)
"""


def test_the_scratch_folder_of_a_killed_run_is_swept_by_the_next_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    killed = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env)
    alive = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        killed_folder, alive_folder = (
            Path(killed.stdout.readline().strip()),
            Path(alive.stdout.readline().strip()),
        )
        killed.send_signal(
            signal.SIGKILL
        )  # runs no finally: the decrypted CSV stays, as after the OOM killer
        killed.wait()
        assert (killed_folder / "users.csv").exists()
        stale = temp / "uci-exhaust-stale"  # no lock (another tool's, or older), two days old
        stale.mkdir()
        (stale / "users.csv").write_text("phone:5550002222")
        two_days_ago = time.time() - 2 * 86400
        os.utime(stale, (two_days_ago, two_days_ago))
        recent = temp / "uci-load-recent"  # no lock, recent: may be a run making its folder now
        recent.mkdir()
        unrelated = temp / "other-tool-folder"
        unrelated.mkdir()
        monkeypatch.setenv("TMPDIR", str(temp))
        import tempfile

        monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again

        load_exhaust(
            response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=f"sqlite:///{tmp_path}/w.db"
        )

        assert not killed_folder.exists() and not stale.exists()
        assert (alive_folder / "users.csv").exists(), "a live run's folder is kept"
        assert recent.exists() and unrelated.exists()
    finally:
        for process in (killed, alive):
            if process.poll() is None:
                process.kill()
                process.wait()
