"""Benchmark: copying one large exhaust file from the emulator, beside ``curl`` on the same URL.

Starts the emulator (``uci-exhaust emulator serve``, local storage) and Azurite, places a generated
file of ``--mb`` MB (default 1024) as a finished job's output through the admin route (the upload is
streamed from a temporary file), then times, one after the other:

- ``curl -s -o FILE URL`` on a freshly signed download URL of the job (the reference), and
  :func:`airflow_provider_uci.exhaust.download.download` to a local file, taking turns ``--repeat``
  times (default 3), the fastest run of each counting;
- :class:`~airflow_provider_uci.transfers.exhaust.CopyExhaustFilesOperator` to Azurite (the download
  streamed into a block blob); beside it, curl doing the same copy (the download above, then
  ``curl -T FILE`` to a SAS URL of a blob: one Put Blob), and that ``curl -T`` on its own: the fastest
  Azurite here takes in a file, which no copy into it can pass.

Each copy by the provider runs in a child process that reports its own wall time and peak RSS; each
is repeated for a ``--small-mb`` file (default 64) to show whether memory grows with the file size.
Every copy is checked byte for byte (size and SHA-256).

Targets: >= 80% of curl's MB/s, and peak RSS flat in file size (within 20% of the small file's).

    uv run python tests/benchmarks/copy.py [--mb 1024] [--small-mb 64]
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's ``copy`` module. Run as a script, it keeps its folder
# off the import path. Imported as ``copy`` (a sibling script runs with this folder first on the path),
# it hands the importer the standard library's module instead and does nothing else.
_HERE = os.path.dirname(os.path.abspath(__file__))
_PATH = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
if __name__ != "__main__":
    import importlib.machinery
    import importlib.util

    _spec = importlib.machinery.PathFinder.find_spec("copy", _PATH)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[__name__] = _module
    _spec.loader.exec_module(_module)
    globals().update({name: value for name, value in vars(_module).items() if not name.startswith("__")})
else:
    sys.path[:] = _PATH

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from tests.support.api import ExhaustApi, new_tag, submit_body
    from tests.support.connections import uci_connection
    from tests.support.services import Emulator, run_azurite, run_emulator

MIB = 1024 * 1024
RATE_TARGET = 0.80
FLAT_TARGET = 0.20
CHANNEL = "dev-channel"
BOT = "b0b0b0b0-0000-4000-8000-00000000000b"

CHILD = r"""
import hashlib, json, logging, resource, sys, time
from pathlib import Path
from types import SimpleNamespace

logging.getLogger("azure").setLevel(logging.WARNING)
mode, tag, request_id, target, digest = sys.argv[1:6]
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from airflow_provider_uci.exhaust.download import download
from airflow_provider_uci.hooks.exhaust import UciExhaustHook
from airflow_provider_uci.transfers.exhaust import CopyExhaustFilesOperator

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {}
if mode == "local":
    hook = UciExhaustHook()
    hook.read_request(tag, request_id)  # the hook's first call sets up its session; curl's URL is in hand too
    began = time.perf_counter()
    result["size"] = download(lambda: list(hook.read_request(tag, request_id).download_urls), 0, Path(target))
    seconds = time.perf_counter() - began
elif mode == "azure":
    jobs = {"uci-response-exhaust": {"tag": tag, "request_id": request_id}}
    task = CopyExhaustFilesOperator(task_id="copy", jobs=jobs, destination=target, wasb_conn_id="uci_blob")
    began = time.perf_counter()
    result = task.execute({"ti": SimpleNamespace(try_number=1)})["uci-response-exhaust"]
    seconds = time.perf_counter() - began
else:
    raise SystemExit(f"unknown mode {mode}")
usage = resource.getrusage(resource.RUSAGE_SELF)
peak = usage.ru_maxrss
result["cpu"] = {"user": usage.ru_utime, "system": usage.ru_stime}
if mode != "local":  # read the blob back, after the measurement, and compare
    key = result["csv"].removeprefix("wasb://bench-copies/")
    blob = WasbHook(wasb_conn_id="uci_blob").blob_service_client.get_blob_client("bench-copies", key)
    check = hashlib.sha256()
    for piece in blob.download_blob(max_concurrency=2).chunks():
        check.update(piece)
    result["sha256_ok"] = check.hexdigest() == digest
    blob.delete_blob()
print(json.dumps({"seconds": seconds, "rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024,
                  "result": result}))
"""


def make_file(path: Path, megabytes: int) -> str:
    """Write ``megabytes`` MiB of exhaust-like CSV text to ``path`` a block at a time; return its SHA-256."""
    row = (
        "ASSESS:{n:032x},c387e983-f87b-4471-aef5-c31634fd1433,Global Tara Bot,"
        "cbcf21a0-73ad-4e96-9802-38ea535cf88b,a3fd00b8-eac9-4efa-944a-19b8788e1084,mcq,\"Hi, I'm Tara,\n"
        'May I help you?","",0,1,1,"[{{\\"1\\":{{\\"text\\":\\"1 Yes\\"}}}}]","[{{\\"ans1\\":\\"{n}\\"}}]",'
        "question./data/q[1],false,2022-06-21T14:45:56.892Z,2022-06-21T14:45:56.892Z\n"
    )
    digest = hashlib.sha256()
    total = megabytes * MIB
    written = number = 0
    with path.open("wb") as out:
        while written < total:
            lines = []
            size = 0
            while size < MIB:
                line = row.format(n=number).encode()
                lines.append(line)
                size += len(line)
                number += 1
            block = b"".join(lines)[: total - written]
            out.write(block)
            digest.update(block)
            written += len(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def place(emulator: Emulator, source: Path) -> tuple[str, str]:
    """Submit a response job and store ``source`` as its file, streaming the upload; the job is then SUCCESS."""
    import requests

    api = ExhaustApi(emulator.api)
    tag = new_tag()
    answer = api.submit(submit_body(tag, conversation_id=BOT, start="2026-01-01", end="2026-01-31"))
    answer.raise_for_status()
    request_id = answer.json()["result"]["requestId"]
    with source.open("rb") as body:
        requests.post(
            f"{emulator.root}/admin/jobs/{request_id}/file",
            params={"tag": f"{tag}:{CHANNEL}", "name": "export.csv"},
            data=body,
            headers={"Content-Length": str(source.stat().st_size)},
            timeout=3600,
        ).raise_for_status()
    return tag, request_id


def child(mode: str, tag: str, request_id: str, target: str, digest: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, tag, request_id, target, digest],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {mode} copy failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["result"].get("sha256_ok") is False:
        raise SystemExit(f"the {mode} copy stored other bytes")
    return result


def curl(url: str, target: Path) -> float:
    began = time.perf_counter()
    subprocess.run(["curl", "-s", "-S", "-f", "-o", str(target), url], check=True)
    return time.perf_counter() - began


def curl_put(connection_string: str, source: Path) -> float:
    """Seconds ``curl -T`` takes to store ``source`` as one block blob in Azurite (a SAS URL, one Put Blob)."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    service = BlobServiceClient.from_connection_string(connection_string)
    container = service.get_container_client("bench-curl")
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client("reference/curl.csv")
    sas = generate_blob_sas(
        service.account_name,
        "bench-curl",
        "reference/curl.csv",
        account_key=service.credential.account_key,
        permission=BlobSasPermissions(write=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    began = time.perf_counter()
    subprocess.run(
        [
            "curl",
            "-s",
            "-S",
            "-f",
            "-o",
            os.devnull,
            "-H",
            "x-ms-blob-type: BlockBlob",
            "-T",
            str(source),
            f"{blob.url}?{sas}",
        ],
        check=True,
    )
    seconds = time.perf_counter() - began
    if blob.get_blob_properties().size != source.stat().st_size:
        raise SystemExit("curl stored another size in Azurite")
    blob.delete_blob()
    return seconds


def measure(
    emulator: Emulator, azure: str | None, work: Path, megabytes: int, env: dict[str, str], repeat: int = 3
) -> dict:
    source = work / f"source-{megabytes}.csv"
    digest = make_file(source, megabytes)
    size = source.stat().st_size
    tag, request_id = place(emulator, source)
    source.unlink()
    result: dict = {"mb": size / MIB}

    read = ExhaustApi(emulator.api).read(tag, request_id)
    read.raise_for_status()
    (url,) = read.json()["result"]["downloadUrls"]  # freshly signed, as the hook gets it
    target = work / "curl.csv"
    mine = work / "download.csv"
    # curl and download() take turns, before anything is written to Azurite (which keeps working
    # afterwards); each keeps its fastest run, as the machine's own noise is larger than the difference
    for _ in range(repeat):
        os.sync()  # each timed run starts with no dirty pages of an earlier one being written back
        seconds = curl(url, target)
        if target.stat().st_size != size or sha256(target) != digest:
            raise SystemExit("curl got other bytes")
        if "curl" not in result or seconds < result["curl"]["seconds"]:
            result["curl"] = {"seconds": seconds}
        os.sync()
        run = child("local", tag, request_id, str(mine), digest, env)
        if run["result"]["size"] != size or sha256(mine) != digest:
            raise SystemExit("download() got other bytes")
        mine.unlink()
        if "local" not in result or run["seconds"] < result["local"]["seconds"]:
            result["local"] = run

    if azure:
        os.sync()
        result["curl_put"] = {"seconds": curl_put(azure, target)}
    target.unlink()

    if azure:
        os.sync()
        result["azure"] = child("azure", tag, request_id, "wasb://bench-copies/uci", digest, env)
    return result


def report(result: dict) -> dict[str, bool]:
    megabytes = result["mb"]
    reference = megabytes / result["curl"]["seconds"]
    print(f"{megabytes:,.0f} MB file")
    print(
        f"  curl -s -o FILE URL (fastest run):    {result['curl']['seconds']:7.2f} s  {reference:8.1f} MB/s"
    )
    verdicts = {}
    for name, label in (
        ("local", "download(), fastest run:"),
        ("azure", "CopyExhaustFilesOperator to Azurite:"),
    ):
        if name not in result:
            continue
        run = result[name]
        rate = megabytes / run["seconds"]
        verdicts[name] = rate >= RATE_TARGET * reference
        print(
            f"  {label:<37} {run['seconds']:7.2f} s  {rate:8.1f} MB/s = {rate / reference:6.1%} of curl "
            f"({'PASS' if verdicts[name] else 'MISS'}), peak RSS {run['peak_rss_mb']:.0f} MB "
            f"(after the imports {run['rss_before_mb']:.0f} MB), CPU {run['result']['cpu']['user']:.1f} s user "
            f"{run['result']['cpu']['system']:.1f} s system (imports included)"
        )
    if "curl_put" in result:
        copied = result["curl"]["seconds"] + result["curl_put"]["seconds"]
        print(
            f"  for reference, curl's own copy into Azurite (the download, then curl -T to a SAS URL): "
            f"{copied:.2f} s = {megabytes / copied:.1f} MB/s, the operator at "
            f"{copied / result['azure']['seconds']:.1%} of it"
        )
        intake = result["curl_put"]["seconds"]
        print(
            f"  and curl -T of the file alone (one Put Blob): {intake:.2f} s = {megabytes / intake:.1f} MB/s: "
            f"what Azurite takes in at best, the operator's copy at {intake / result['azure']['seconds']:.1%} "
            f"of that"
        )
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=1024, help="size of the file in MiB (default 1024)")
    parser.add_argument(
        "--small-mb",
        type=int,
        default=64,
        help="size of the reference file for the memory check, in MiB (default 64; 0 skips it)",
    )
    parser.add_argument("--no-azure", action="store_true", help="skip the copy to Azurite")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of curl and of download() each, taking turns; the fastest of each counts",
    )
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is not on PATH")

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="uci-bench-copy-") as tmp:
        work = Path(tmp)
        airflow_home = work / "airflow-home"
        airflow_home.mkdir()
        with (
            run_emulator(work / "emulator", "--no-schedule") as emulator,
            contextlib.nullcontext() if args.no_azure else run_azurite(work / "azurite") as azurite,
        ):
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(airflow_home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_UCI_EXHAUST_DEFAULT": uci_connection(emulator.api),
                "TMPDIR": str(work),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
            if azurite is not None:
                env["AIRFLOW_CONN_UCI_BLOB"] = json.dumps(
                    {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
                )
            results = []
            target = azurite.connection_string if azurite is not None else None
            if args.small_mb:
                results.append(measure(emulator, target, work, args.small_mb, env, args.repeat))
            results.append(measure(emulator, target, work, args.mb, env, args.repeat))

    verdicts = {}
    for result in results:  # the rate targets are for the large file (curl's start-up weighs on a small one)
        judged = report(result)
        if result is results[-1]:
            verdicts.update({f"{key} rate": value for key, value in judged.items()})
    if len(results) == 2:
        small, large = results
        for name in ("local", "azure"):
            if name in large:
                growth = large[name]["peak_rss_mb"] / small[name]["peak_rss_mb"] - 1
                verdicts[f"{name} memory flat"] = abs(growth) <= FLAT_TARGET
                print(
                    f"  {name}: peak RSS {small[name]['peak_rss_mb']:.0f} MB at {small['mb']:,.0f} MB -> "
                    f"{large[name]['peak_rss_mb']:.0f} MB at {large['mb']:,.0f} MB = {growth:+.1%}: "
                    f"{'PASS' if verdicts[f'{name} memory flat'] else 'MISS'} (target within {FLAT_TARGET:.0%})"
                )
    finish = os.getloadavg()[0]
    print(f"load average (1 min) {load:.2f} at the start, {finish:.2f} at the end, on {os.cpu_count()} CPUs")
    print(
        "overall: "
        + (
            "PASS"
            if all(verdicts.values())
            else "MISS (" + ", ".join(key for key, value in verdicts.items() if not value) + ")"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
