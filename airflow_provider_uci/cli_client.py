"""``uci-exhaust submit|status|list|download``: ad-hoc calls on the same hook the DAG uses.

The service is given as an Airflow connection (``--conn-id``) or by flags (``--url``, ``--channel``
and the API key from ``--api-key`` or, better, the ``UCI_EXHAUST_API_KEY`` variable). Signed URLs
and keys are never printed. Exit codes: 0 done, 1 the service or the network failed, 2 bad input,
3 no such job. Also what every ``uci-exhaust`` command shares: one-line failures (:func:`failure_line`,
:func:`exit_code`) and usage errors (:class:`OneLineParser`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

CLI_CONN_ID = "uci_exhaust_cli"
#: ``list --limit``: the service has no maximum and answers a limit below 1 with HTTP 500
#: (docs/service-contract.md §1.5).
LIST_LIMITS = (1, 10_000)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that tells a usage error on one line (and where to read more), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_unzip_limit(parser: argparse.ArgumentParser) -> None:
    """The ``--max-unzipped-mb`` flag of the commands that open a private zip."""
    parser.add_argument(
        "--max-unzipped-mb",
        type=int,
        metavar="MB",
        help="refuse a private zip whose CSV unzips to more than this many MB (default: 100 times "
        "the zip's size, at least 1 and at most 4096)",
    )


def unzip_limit_of(args: argparse.Namespace) -> int | None:
    """``--max-unzipped-mb`` in bytes (``None``: the default limit)."""
    if args.max_unzipped_mb is None:
        return None
    if args.max_unzipped_mb < 1:
        raise ValueError(f"--max-unzipped-mb: must be at least 1, got {args.max_unzipped_mb}")
    return args.max_unzipped_mb * 1024 * 1024


def secrets_of(args: argparse.Namespace) -> list[str]:
    """What must never be printed: keys given by flag or variable, the warehouse URL's password."""
    found = [getattr(args, "encryption_key", None), getattr(args, "api_key", None)]
    found += [
        os.environ.get(name)
        for name in ("UCI_EXHAUST_API_KEY", "UCI_EXHAUST_ENCRYPTION_KEY", "UCI_EXHAUST_PHONE_HASH_SECRET")
    ]
    from airflow_provider_uci.exhaust.warehouse.urls import url_password

    found.append(url_password(getattr(args, "warehouse", None) or ""))
    return [secret for secret in found if secret and len(secret) >= 3]


def exit_code(exc: BaseException) -> int:
    """The exit code of a failure: 2 bad input, 3 no such job, 1 anything else (the service, the network,
    the warehouse)."""

    def kind(module: str, name: str) -> type | None:
        # only a module already imported can have raised it (and importing Airflow's takes seconds)
        return getattr(sys.modules.get(module), name, None)

    not_found = kind("airflow_provider_uci.models", "ExhaustJobNotFound")
    if not_found is not None and isinstance(exc, not_found):
        return 3
    bad_input = [ValueError, FileNotFoundError, NotADirectoryError]
    bad_input += [
        found
        for found in (
            kind("airflow_provider_uci.emulator.config", "SettingsError"),
            kind("airflow_provider_uci.emulator.faults", "FaultSpecError"),
        )
        if found
    ]
    return 2 if isinstance(exc, tuple(bad_input)) else 1


def failure_line(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """The one line that tells a failure: its message (after its type, when it is not one of ours), on one
    line, every secret replaced by ``***`` and no signed URL's signature."""
    text = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    ours = type(exc).__module__.startswith("airflow_provider_uci") or type(exc) in (
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        RuntimeError,
    )
    if not ours or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return re.sub(r"(?i)([?&](?:sig|signature|se|sv|sp|sr|st|skoid|sktid)=)[^&#\s]*", r"\1***", text)


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Add the four commands to ``uci-exhaust``."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("service (an Airflow connection, or flags)")
    where.add_argument("--conn-id", help="an Airflow connection of type uci_exhaust")
    where.add_argument(
        "--url",
        default=os.environ.get("UCI_EXHAUST_URL"),
        help="API base URL, e.g. https://<host>/api (or UCI_EXHAUST_URL)",
    )
    where.add_argument(
        "--channel",
        default=os.environ.get("UCI_EXHAUST_CHANNEL"),
        help="channel id, sent as X-Channel-ID (or UCI_EXHAUST_CHANNEL)",
    )
    where.add_argument("--api-key", help="API key; prefer the UCI_EXHAUST_API_KEY variable")
    where.add_argument("--requested-by", default=os.environ.get("UCI_EXHAUST_REQUESTED_BY", ""))
    where.add_argument("--encryption-key", help="private zip password; prefer UCI_EXHAUST_ENCRYPTION_KEY")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")

    submit = commands.add_parser("submit", parents=[common], help="submit an exhaust request")
    submit.add_argument("--conversation-id", required=True, help="the bot id (UUID)")
    submit.add_argument(
        "--dataset", required=True, help="response, private, uci-response-exhaust or uci-private-exhaust"
    )
    submit.add_argument("--from-date", required=True, help="first day, YYYY-MM-DD")
    submit.add_argument("--to-date", required=True, help="last day, YYYY-MM-DD")
    submit.add_argument("--tag", help="the request's tag (default: a new UUID)")

    status = commands.add_parser("status", parents=[common], help="show one request")
    status.add_argument("--tag", required=True)
    status.add_argument("--request-id", required=True)

    listing = commands.add_parser("list", parents=[common], help="list a tag's requests, newest first")
    listing.add_argument("--tag", required=True)
    listing.add_argument(
        "--limit",
        type=int,
        default=100,
        help=f"at most this many ({LIST_LIMITS[0]} to {LIST_LIMITS[1]}; default 100)",
    )

    download = commands.add_parser(
        "download",
        parents=[common],
        help="download a finished request's files (fresh signed URLs on every retry)",
    )
    download.add_argument("--tag", required=True)
    download.add_argument("--request-id", required=True)
    download.add_argument("--out", type=Path, default=Path("."), help="folder for the files (default .)")
    download.add_argument("--extract", action="store_true", help="also unzip a private exhaust with the key")
    add_unzip_limit(download)


def _hook(args: argparse.Namespace) -> Any:
    from airflow_provider_uci.hooks.exhaust import UciExhaustHook
    from airflow_provider_uci.models import ExhaustValidationError

    if args.conn_id:
        return UciExhaustHook(args.conn_id)
    api_key = args.api_key or os.environ.get("UCI_EXHAUST_API_KEY")
    for name, value in (("--url", args.url), ("--channel", args.channel), ("--api-key", api_key)):
        if not value:
            raise ExhaustValidationError(name, "is needed when no --conn-id is given")
    extra = {"channel_id": args.channel, "requested_by": args.requested_by}
    key = args.encryption_key or os.environ.get("UCI_EXHAUST_ENCRYPTION_KEY")
    if key:
        extra["encryption_key"] = key
    os.environ[f"AIRFLOW_CONN_{CLI_CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "uci_exhaust", "host": args.url, "password": api_key, "extra": extra}
    )
    return UciExhaustHook(CLI_CONN_ID)


def _job_view(job: Any) -> dict[str, Any]:
    return {
        **job.identifiers(),
        "status": job.status_text,
        "attempts": job.attempts,
        "status_message": job.status_message,
        "files": len(job.download_urls),
        "submitted_at": job.submitted_at.isoformat() if job.submitted_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
    }


def _print_job(view: dict[str, Any]) -> None:
    print(
        f"{view['dataset']}  request {view['request_id']}  tag {view['tag']}  {view['status']}"
        f"  attempts {view['attempts']}  files {view['files']}"
    )
    print(
        f"  conversation {view['conversation_id']}  {view['start_date']}..{view['end_date']}"
        + (f"  message: {view['status_message']}" if view.get("status_message") else "")
    )


def _bar(name: str) -> Any:
    started = time.monotonic()
    shown = [0.0]

    def show(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - shown[0] < 0.2 and total != done:
            return
        shown[0] = now
        rate = done / max(now - started, 1e-6) / 1e6
        if total:
            filled = int(30 * done / total)
            sys.stderr.write(
                f"\r{name} [{'#' * filled}{'.' * (30 - filled)}] {done / 1e6:.1f}/{total / 1e6:.1f} MB "
                f"{rate:.1f} MB/s"
            )
        else:
            sys.stderr.write(f"\r{name} {done / 1e6:.1f} MB {rate:.1f} MB/s")
        sys.stderr.flush()

    return show


@contextlib.contextmanager
def _stdout_to_stderr() -> Any:
    """Point file descriptor 1 at stderr for a while (loggers hold on to the stdout they found)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _check(args: argparse.Namespace) -> None:
    """Refuse numbers the service would answer with an error, before anything is sent."""
    from airflow_provider_uci.models import ExhaustValidationError

    if args.command == "list" and not LIST_LIMITS[0] <= args.limit <= LIST_LIMITS[1]:
        raise ExhaustValidationError(
            "--limit",
            f"must be {LIST_LIMITS[0]} to {LIST_LIMITS[1]} (the service answers "
            "a limit below 1 with HTTP 500)",
            args.limit,
        )
    if args.command == "download":
        unzip_limit_of(args)
    if args.command == "submit":
        from airflow_provider_uci.exhaust.names import conversation_id

        conversation_id(args.conversation_id, "--conversation-id")


def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    _check(args)
    hook = _hook(args)
    if args.command == "submit":
        import uuid

        request = hook.request_for(
            args.conversation_id, args.dataset, args.from_date, args.to_date, args.tag or str(uuid.uuid4())
        )
        return [_job_view(hook.submit_request(request))]
    if args.command == "status":
        return [_job_view(hook.read_request(args.tag, args.request_id))]
    if args.command == "list":
        return [_job_view(job) for job in hook.list_requests(args.tag, args.limit)]
    return [_download(hook, args)]


def run_client_command(args: argparse.Namespace) -> int:
    """Run one of the four commands; return the exit code."""
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    try:
        with _stdout_to_stderr():  # Airflow's log lines must not mix with the output
            views = _run(args)
    except Exception as exc:
        print(f"uci-exhaust: error: {failure_line(exc, secrets_of(args))}", file=sys.stderr)
        return exit_code(exc)
    if args.json:
        print(json.dumps(views if args.command == "list" else views[0], indent=2))
    else:
        for view in views:
            _print_job(view)
            for path in view.get("paths", []):
                print(f"  saved {path}")
        if args.command == "list":
            print(f"{len(views)} request(s)")
    return 0


def _download(hook: Any, args: argparse.Namespace) -> dict[str, Any]:
    from airflow_provider_uci.exhaust.download import download
    from airflow_provider_uci.exhaust.names import dataset_file_names, url_suffix
    from airflow_provider_uci.exhaust.private_zip import open_private_zip
    from airflow_provider_uci.models import ExhaustError, JobStatus

    job = hook.read_request(args.tag, args.request_id)
    if job.status is not JobStatus.SUCCESS:
        raise ExhaustError(
            f"request {job.request_id} is {job.status_text}, not SUCCESS: nothing to download yet"
        )

    def fresh_urls() -> list[str]:
        return list(hook.read_request(args.tag, args.request_id).download_urls)

    # fixed names per dataset: a name the service chose (".bashrc") must not pick where a file lands
    names = dataset_file_names(
        job.identifiers().get("dataset"), [url_suffix(url) for url in job.download_urls]
    )
    paths = []
    for index, name in enumerate(names):
        target = args.out / name
        size = download(fresh_urls, index, target, progress=_bar(name))
        sys.stderr.write("\n")
        paths.append(str(target))
        if args.extract and name.endswith(".zip"):
            paths.append(
                str(
                    open_private_zip(
                        target,
                        hook.settings.encryption_key,
                        args.out,
                        name=target.with_suffix(".csv").name,
                        max_bytes=unzip_limit_of(args),
                    )
                )
            )
        hook.log.debug("downloaded %s (%d bytes)", name, size)
    return {**_job_view(job), "paths": paths}
