"""``uci-exhaust``: the command line of airflow-provider-uci.

Every failure is told on one line of stderr, with no traceback and no secret, and an exit code:
1 the service, the network or the warehouse failed; 2 bad input (a flag, a file, a value); 3 no such
job (``cli_client.exit_code``). A command whose extra is not installed says which to install, with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_provider_uci.cli_client import (
    OneLineParser,
    add_unzip_limit,
    exit_code,
    failure_line,
    secrets_of,
    unzip_limit_of,
)
from airflow_provider_uci.extras import EXTRAS, MissingExtra, extra_for, install_line, require

#: The extras each command needs, and the modules of them it imports (``None``: all of them); checked
#: before the command starts, so that it fails at once in one line rather than halfway through.
COMMAND_EXTRAS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "emulator": (("emulator",), None),
    "report": (("analytics",), ("matplotlib",)),
    "demo": (("emulator", "analytics"), (*EXTRAS["emulator"], "matplotlib")),
}

EMULATOR_ENV_HELP = """\
Every flag has an environment variable; a flag wins over its variable.
  --data-dir                UCI_EMULATOR_DATA_DIR
  --database-url            UCI_EMULATOR_DATABASE_URL
  --api-key KEY=CONSUMER    UCI_EMULATOR_API_KEYS=key1=consumer1,key2=consumer2
  --authorize CONS=CHANNEL  UCI_EMULATOR_AUTHORIZED=consumer1=channel1,consumer1=channel2
  --timezone                UCI_EMULATOR_TIMEZONE
  --now                     UCI_EMULATOR_NOW
  --expiry-seconds          UCI_EMULATOR_EXPIRY_SECONDS
  --storage                 UCI_EMULATOR_STORAGE
  --storage-account         UCI_EMULATOR_STORAGE_ACCOUNT
  --azure-connection-string UCI_EMULATOR_AZURE_CONNECTION_STRING
  --signing-key             UCI_EMULATOR_SIGNING_KEY
  --server-error-delay      UCI_EMULATOR_SERVER_ERROR_DELAY
  --fault-500 / -429 / -latency / -drop / -truncate / --fault-seed
                            UCI_EMULATOR_FAULT_500, _429, _LATENCY, _DROP, _TRUNCATE, _SEED
  --retry-after, --latency-seconds
                            UCI_EMULATOR_FAULT_RETRY_AFTER, UCI_EMULATOR_FAULT_LATENCY_SECONDS
  --pdata-id                UCI_EMULATOR_PDATA_ID
  --encryption-secret       UCI_EMULATOR_ENCRYPTION_SECRET
  --response-cron           UCI_EMULATOR_RESPONSE_CRON
  --private-cron            UCI_EMULATOR_PRIVATE_CRON
  --jobs-timezone           UCI_EMULATOR_JOBS_TIMEZONE
  --jobs-every              UCI_EMULATOR_JOBS_EVERY
  --no-schedule             UCI_EMULATOR_SCHEDULE=false

With no configuration, the API key 'dev-key' (consumer 'dev-consumer') may use channel 'dev-channel'.
A fault rate is one number for every route (0.1) or per route (read=0.5,submit=0.1); routes are
submit, read, list, search and download.
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Options every emulator command shares: where data lives, its clock and the jobs' settings."""
    parser.add_argument(
        "--data-dir", type=Path, help="job store, UCI tables and local blobs (default ./.uci-emulator)"
    )
    parser.add_argument("--database-url", help="keep the job store in PostgreSQL (postgresql://...)")
    parser.add_argument("--timezone", help="time zone of the submission date in request ids (default UTC)")
    parser.add_argument("--now", help="start the clock at this ISO date-time (it then ticks in real time)")
    parser.add_argument("--storage", choices=["local", "azure"], help="blob storage backend (default local)")
    parser.add_argument("--storage-account", help="account name in stored URLs of local storage")
    parser.add_argument("--azure-connection-string", help="Azure Blob (or Azurite) connection string")
    parser.add_argument(
        "--pdata-id", help="the response job's context.pdata.id filter (default prod.uci.diksha)"
    )
    parser.add_argument(
        "--encryption-secret", help="base64 AES key of identity usernames (uci.encryption.secret)"
    )


def _emulator_command(
    sub: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    epilog: str = EMULATOR_ENV_HELP,
    common: bool = True,
) -> argparse.ArgumentParser:
    """An emulator command's parser, with the options every emulator command shares unless ``common`` is
    false; ``epilog`` lists the environment variables it reads, laid out as written."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if common:
        _add_common(parser)
    return parser


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = _emulator_command(  # the options it shares come after where it listens
        sub,
        "serve",
        common=False,
        help="serve the Data Exhaust API and run the nightly jobs on schedule",
        description="Serve the Data Exhaust API at /dataset/v1/request/... and /api/dataset/v1/request/..., "
        "the internal POST /request/search, signed downloads and /admin routes, and run the nightly "
        "exhaust jobs on their schedule.",
        epilog=EMULATOR_ENV_HELP + "\nServe also reads:\n"
        "  --admin-token             UCI_EMULATOR_ADMIN_TOKEN (prefer the variable: flags show in ps)\n"
        "  --play-errors             UCI_EMULATOR_PLAY_ERRORS=true\n"
        "\nThe /admin routes and POST /request/search take the admin token as header X-Admin-Token (or as\n"
        "Authorization: Bearer); without a token they answer loopback clients only, and serve refuses a\n"
        "--host beyond loopback.\n",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1); beyond loopback needs --admin-token",
    )
    serve.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    _add_common(serve)
    serve.add_argument(
        "--api-key",
        action="append",
        metavar="KEY=CONSUMER",
        help="an API key and the consumer it identifies; repeatable; replaces the default dev-key",
    )
    serve.add_argument(
        "--authorize",
        action="append",
        metavar="CONSUMER=CHANNEL",
        help="allow a consumer to use a channel; repeatable; replaces the default",
    )
    serve.add_argument("--expiry-seconds", type=int, help="signed URL and expiresAt lifetime (default 1800)")
    serve.add_argument("--signing-key", help="HMAC key of local signed URLs")
    serve.add_argument(
        "--server-error-delay", type=float, help="seconds before a 500 answers (the real service takes 20)"
    )
    _add_schedule_flags(serve)
    _add_fault_flags(serve)
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="token the /admin routes and POST /request/search require as header X-Admin-Token "
        "(at least 16 printable ASCII characters); unset, they answer loopback clients only",
    )
    serve.add_argument(
        "--play-errors",
        action="store_true",
        help="answer malformed input as the real (Play) service does: its HTML pages and HTTP 500s "
        "instead of a 4xx error envelope",
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")


def _add_schedule_flags(serve: argparse.ArgumentParser) -> None:
    """The flags of when the emulator runs its nightly jobs."""
    serve.add_argument("--response-cron", help="when the response job runs (default '0 2 * * *')")
    serve.add_argument("--private-cron", help="when the private job runs (default '0 3 * * *')")
    serve.add_argument("--jobs-timezone", help="time zone of the crons (default Asia/Kolkata)")
    serve.add_argument(
        "--jobs-every",
        type=float,
        metavar="SECONDS",
        help="fast mode: run both jobs every this many seconds instead of on the crons",
    )
    serve.add_argument("--no-schedule", action="store_true", help="never run the jobs by themselves")


def _add_fault_flags(serve: argparse.ArgumentParser) -> None:
    """The fault knobs' flags (each also read from ``UCI_EMULATOR_FAULT_*``)."""
    serve.add_argument("--fault-500", metavar="RATE", help="rate of HTTP 500 with the error envelope")
    serve.add_argument("--fault-429", metavar="RATE", help="rate of HTTP 429 with Retry-After")
    serve.add_argument("--retry-after", metavar="SECONDS", help="Retry-After of injected 429s (default 1)")
    serve.add_argument("--fault-latency", metavar="RATE", help="rate of calls that get added latency")
    serve.add_argument("--latency-seconds", metavar="SECONDS", help="added latency (default 2)")
    serve.add_argument("--fault-drop", metavar="RATE", help="rate of connections dropped without an answer")
    serve.add_argument("--fault-truncate", metavar="RATE", help="rate of downloads cut short")
    serve.add_argument("--fault-seed", metavar="N", help="seed of the fault draws, for repeatable runs")


def _add_run_jobs(sub: argparse._SubParsersAction) -> None:
    run = _emulator_command(
        sub,
        "run-jobs",
        help="run the nightly exhaust jobs now",
        description="Run the nightly exhaust jobs now over the data dir, as the real service's on-demand "
        "replay does: every SUBMITTED or FAILED request with fewer than 3 attempts is processed.",
    )
    run.add_argument(
        "--dataset",
        choices=["uci-response-exhaust", "uci-private-exhaust"],
        help="run only this dataset's job (default: both, response first)",
    )
    run.add_argument("--json", action="store_true", help="print the outcomes as JSON")


def _add_seed(sub: argparse._SubParsersAction) -> None:
    seed = _emulator_command(
        sub,
        "seed",
        help="write realistic bots, users and ASSESS telemetry",
        description="Write bots, FusionAuth users, registrations, identities and ASSESS telemetry in the "
        "shape UCI emits it into the data dir (deterministic for a given --seed).",
    )
    seed.add_argument("--bots", type=int, default=3, help="bots to generate (default 3)")
    seed.add_argument("--users", type=int, default=50, help="users to generate (default 50)")
    seed.add_argument("--events", type=int, default=5000, help="telemetry events to emit (default 5000)")
    seed.add_argument("--start", help="first sync day, YYYY-MM-DD (default: --days days before today, IST)")
    seed.add_argument("--days", type=int, default=3, help="sync days to spread events over (default 3)")
    seed.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    seed.add_argument(
        "--channel", default="dev-channel", help="channel owning the bots (default dev-channel)"
    )
    seed.add_argument("--partitions", type=int, default=2, help="telemetry files per day (default 2)")
    seed.add_argument("--bot", action="append", metavar="ID=NAME", help="also add this bot (repeatable)")
    seed.add_argument(
        "--user",
        action="append",
        metavar="ID[=true|false|unset]",
        help="also add this user, registered to every --bot, with this consent (repeatable)",
    )
    seed.add_argument(
        "--telemetry",
        action="append",
        type=Path,
        metavar="FILE.jsonl",
        help="also load these telemetry events into unique/raw, by IST sync day (repeatable)",
    )
    seed.add_argument(
        "--record",
        type=Path,
        metavar="FILE.jsonl",
        help="write one JSON line per event the response exhaust must contain",
    )
    seed.add_argument(
        "--edge-cases",
        type=float,
        default=0.02,
        metavar="SHARE",
        help="share of answers replaced by Spark-dialect edge cases: quotes, raw newlines, backslashes, "
        "Hindi (default 0.02)",
    )
    seed.add_argument("--json", action="store_true", help="print the summary as JSON")


#: The emulator's settings that its flags of the same name give as they are.
_SETTINGS_AS_GIVEN = (
    "data_dir",
    "database_url",
    "expiry_seconds",
    "storage",
    "storage_account",
    "azure_connection_string",
    "signing_key",
    "server_error_delay",
    "response_cron",
    "private_cron",
    "jobs_every",
    "encryption_secret",
)


def _fault_settings(args: argparse.Namespace):
    """The fault knobs: the flags given, over the ``UCI_EMULATOR_FAULT_*`` variables."""
    from airflow_provider_uci.emulator.faults import FaultSettings

    def flag(name: str) -> Any:
        return getattr(args, name, None)

    return FaultSettings.from_env(
        os.environ,
        error_500=flag("fault_500"),
        error_429=flag("fault_429"),
        retry_after=flag("retry_after"),
        latency=flag("fault_latency"),
        latency_seconds=flag("latency_seconds"),
        drop=flag("fault_drop"),
        truncate=flag("fault_truncate"),
        seed=flag("fault_seed"),
    )


def _emulator_settings(args: argparse.Namespace):
    from airflow_provider_uci.emulator.config import (
        EmulatorSettings,
        check_admin_token,
        parse_instant,
        parse_pairs,
        parse_zone,
    )

    def flag(name: str) -> object:
        return getattr(args, name, None)

    overrides: dict[str, object] = {name: flag(name) for name in _SETTINGS_AS_GIVEN}
    overrides["bot_pdata_id"] = flag("pdata_id")
    if flag("no_schedule"):
        overrides["schedule"] = False
    if flag("play_errors"):
        overrides["play_errors"] = True
    if flag("admin_token") is not None:
        overrides["admin_token"] = check_admin_token(args.admin_token, "--admin-token")
    if flag("jobs_timezone"):
        overrides["jobs_timezone"] = parse_zone(args.jobs_timezone, "--jobs-timezone")
    if flag("api_key"):
        overrides["api_keys"] = dict(pair for item in args.api_key for pair in parse_pairs(item, "--api-key"))
    if flag("authorize"):
        overrides["authorized"] = {
            pair for item in args.authorize for pair in parse_pairs(item, "--authorize")
        }
    if args.timezone:
        overrides["timezone"] = parse_zone(args.timezone, "--timezone")
    if args.now:
        from zoneinfo import ZoneInfo

        tz = overrides.get("timezone") or ZoneInfo("UTC")
        overrides["now"] = parse_instant(args.now, "--now", tz)  # type: ignore[arg-type]
    overrides["faults"] = _fault_settings(args)
    settings = EmulatorSettings.from_env(**overrides)
    if flag("host") is not None:  # serve: refuse to open the admin routes to the network without a token
        from airflow_provider_uci.emulator.access import check_exposure

        check_exposure(args.host, settings)
    return settings


def _run_jobs(args: argparse.Namespace, settings) -> int:
    import json

    from airflow_provider_uci.emulator.service import Service

    service = Service(settings)
    outcomes = service.run_jobs((args.dataset,) if args.dataset else None)
    if args.json:
        print(json.dumps([outcome.as_dict() for outcome in outcomes], indent=2))
    else:
        for outcome in outcomes:
            print(
                f"{outcome.dataset}  {outcome.request_id}  {outcome.status}"
                + (
                    f"  {outcome.message}"
                    if outcome.status == "FAILED"
                    else f"  ({outcome.execution_time} ms)"
                )
            )
        print(f"{len(outcomes)} request(s) processed")
    return 0


def _seed_user(item: str) -> tuple[str, bool | None]:
    """A ``--user`` value: ``ID[=true|false|unset]`` (a bare ID consents)."""
    user_id, _, consent = item.partition("=")
    value = {"": True, "true": True, "false": False, "unset": None}.get(consent.strip().lower(), "bad")
    if value == "bad" or not user_id.strip():
        raise ValueError(f"--user: expected ID[=true|false|unset], got {item!r}")
    return user_id.strip(), value  # type: ignore[return-value]


def _print_seeded(summary: dict, data_dir: Path) -> None:
    """What the seed wrote, in a few lines."""
    users = summary["users"]
    print(f"seeded {data_dir}: channel {summary['channel']}, pdata id {summary['pdata_id']}")
    for bot in summary["bots"]:
        total = sum(bot["events_by_day"].values())
        print(
            f"  bot {bot['id']}  {bot['name']}: {total} response rows over {len(bot['events_by_day'])} day(s)"
        )
    print(
        f"  users: {users['consent_true']} consenting, {users['consent_false']} not, "
        f"{users['consent_unset']} unset"
    )
    events = summary["events"]
    print(
        f"  events: {events['emitted']} emitted, {events['kept']} kept in unique/raw "
        f"({events['duplicates_dropped']} same-second duplicates dropped), {events['filtered_out']} "
        f"that the job filters out, {events['unknown_device']} from unknown devices"
    )
    if summary["telemetry_events_loaded"]:
        print(f"  telemetry files: {summary['telemetry_events_loaded']} events loaded")


def _seed(args: argparse.Namespace, settings) -> int:
    import json
    from datetime import date

    from airflow_provider_uci.emulator.config import parse_pairs
    from airflow_provider_uci.emulator.jobs.common import IST
    from airflow_provider_uci.emulator.seed import SeedOptions
    from airflow_provider_uci.emulator.service import Service

    try:
        start = date.fromisoformat(args.start) if args.start else None
    except ValueError:
        raise ValueError(f"--start: expected YYYY-MM-DD, got {args.start!r}") from None
    for path in args.telemetry or []:
        if not path.is_file():
            raise ValueError(f"--telemetry: no such file {str(path)!r}")
    options = SeedOptions(
        bots=args.bots,
        users=args.users,
        events=args.events,
        start=start,
        days=args.days,
        seed=args.seed,
        channel=args.channel,
        partitions=args.partitions,
        record=args.record,
        telemetry_files=list(args.telemetry or []),
        extra_bots=[pair for item in args.bot or [] for pair in parse_pairs(item, "--bot")],
        extra_users=[_seed_user(item) for item in args.user or []],
        edge_cases=args.edge_cases,
    )
    service = Service(settings)
    summary = service.seed(options, today=service.clock.now().astimezone(IST).date())
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_seeded(summary, settings.data_dir)
    return 0


def _add_load(commands: argparse._SubParsersAction) -> None:
    load = commands.add_parser(
        "load",
        help="join and load exhaust files downloaded by hand into a warehouse",
        description="Join a response exhaust CSV to its private exhaust (CSV or zip) on Device ID = Device UUID and "
        "load both into a warehouse in one transaction; rerunning gives the same table.",
    )
    load.add_argument(
        "--response",
        type=Path,
        help="the response exhaust CSV; leave it out when the service answered 'No data found' for "
        "it: the bot's rows of every day from --from-date to --to-date are then removed (needs "
        "--conversation-id, --from-date and --to-date)",
    )
    load.add_argument(
        "--private",
        type=Path,
        help="the private exhaust CSV or zip; leave it out when the service answered 'No data found' "
        "for it: the responses load with no user joined",
    )
    load.add_argument("--encryption-key", help="the private zip's password (or UCI_EXHAUST_ENCRYPTION_KEY)")
    add_unzip_limit(load)
    load.add_argument("--warehouse", required=True, help="sqlite:///path.db or postgresql://user@host/db")
    load.add_argument("--table", default="uci_responses", help="responses table (default uci_responses)")
    load.add_argument("--conversation-id", help="the bot (default: read from the response file)")
    load.add_argument(
        "--from-date",
        help="first sync day (IST) of the exhaust's range, YYYY-MM-DD; the load "
        "replaces the bot's rows of every day of the range (default: the "
        "first day the file holds)",
    )
    load.add_argument("--to-date", help="last sync day of the range (default: the last day the file holds)")
    load.add_argument(
        "--phone-numbers",
        choices=["plain", "hashed", "none"],
        default="plain",
        help="store phone numbers as they are, hashed (HMAC-SHA256 keyed with the secret in the "
        "UCI_EXHAUST_PHONE_HASH_SECRET variable), or not at all",
    )
    load.add_argument("--max-rejects", type=int, default=0, help="unreadable records to bear (default 0)")
    load.add_argument(
        "--rejects", type=Path, help="JSON-lines file for rejected records (default beside --response)"
    )
    load.add_argument("--json", action="store_true", help="print the summary as JSON")


def _load(args: argparse.Namespace) -> int:
    import json

    from airflow_provider_uci.exhaust.load import load_exhaust

    key = args.encryption_key or os.environ.get("UCI_EXHAUST_ENCRYPTION_KEY") or None
    if args.conversation_id is not None:
        from airflow_provider_uci.exhaust.names import conversation_id

        conversation_id(args.conversation_id, "--conversation-id")
    beside = args.response or args.private
    rejects = args.rejects or (beside.with_name(beside.stem + ".rejects.jsonl") if beside else None)
    summary = load_exhaust(
        response_csv=args.response,
        private=args.private,
        warehouse_url=args.warehouse,
        table=args.table,
        encryption_key=key,
        conversation_id=args.conversation_id,
        from_date=args.from_date,
        to_date=args.to_date,
        phone_numbers=args.phone_numbers,
        max_rejects=args.max_rejects,
        reject_path=rejects,
        max_unzipped_bytes=unzip_limit_of(args),
    )
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print(
            f"loaded {summary.responses_loaded} response(s) of {summary.conversation_id} into {summary.table} "
            f"({summary.responses_without_user} without a user row, {summary.responses_replaced} earlier row(s) "
            f"replaced), {summary.users_loaded} user(s); "
            f"{summary.rejected} rejected" + (f" (see {summary.reject_file})" if summary.reject_file else "")
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``uci-exhaust`` argument parser."""
    parser = OneLineParser(prog="uci-exhaust", description="Sunbird UCI Data Exhaust tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    emulator = commands.add_parser(
        "emulator", help="the local Data Exhaust service", description="The local Data Exhaust service."
    )
    emulator_commands = emulator.add_subparsers(dest="emulator_command", required=True)
    _add_serve(emulator_commands)
    _add_run_jobs(emulator_commands)
    _add_seed(emulator_commands)
    _add_load(commands)
    from airflow_provider_uci.cli_client import add_client_commands

    add_client_commands(commands)
    from airflow_provider_uci.analytics.report import add_report_command

    add_report_command(commands)
    demo = commands.add_parser(
        "demo",
        help="run the whole path on this machine: emulator, seed data, the DAG, a warehouse",
        description="Start the emulator in this process, seed a few bots, run the uci_exhaust DAG with "
        "dag.test() and print a summary per bot. Everything lives under --workdir, made anew each run: a "
        "folder the demo made before (it holds its marker file), or an empty or new one; any other is refused.",
    )
    demo.add_argument(
        "--workdir", type=Path, default=Path(".uci-demo"), help="where it all goes (default .uci-demo)"
    )
    demo.add_argument("--bots", type=int, default=3, help="bots to seed (default 3)")
    demo.add_argument("--events", type=int, default=3000, help="telemetry events to seed (default 3000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``uci-exhaust``; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except KeyboardInterrupt:
        print("uci-exhaust: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        extra_line = _missing_extra_line(exc)
        if extra_line:
            print(f"uci-exhaust {args.command}: {extra_line}", file=sys.stderr)
            return 2
        print(f"uci-exhaust: error: {failure_line(exc, secrets_of(args))}", file=sys.stderr)
        return exit_code(exc)


def _missing_extra_line(exc: Exception) -> str | None:
    """The line saying which extra to install, when ``exc`` is a missing extra's module."""
    if isinstance(exc, MissingExtra):
        return str(exc)
    extra = extra_for(exc) if isinstance(exc, ImportError) else None
    return install_line([extra]) if extra else None


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command in COMMAND_EXTRAS:
        extras, modules = COMMAND_EXTRAS[args.command]
        require(extras, modules=modules)
    if args.command == "emulator" and args.emulator_command == "serve":
        settings = _emulator_settings(args)  # before the server's heavy imports: bad settings fail fast
        from airflow_provider_uci.emulator.server import serve

        print(
            f"uci-exhaust emulator: http://{args.host}:{args.port}/api  (data: {settings.data_dir}, "
            f"storage: {settings.storage}, store: {'postgresql' if settings.database_url else 'sqlite'})",
            flush=True,
        )
        serve(settings, host=args.host, port=args.port, log_level=args.log_level)
        return 0
    if args.command == "emulator" and args.emulator_command == "run-jobs":
        return _run_jobs(args, _emulator_settings(args))
    if args.command == "emulator" and args.emulator_command == "seed":
        return _seed(args, _emulator_settings(args))
    if args.command == "load":
        return _load(args)
    if args.command in ("submit", "status", "list", "download"):
        from airflow_provider_uci.cli_client import run_client_command

        return run_client_command(args)
    if args.command == "report":
        from airflow_provider_uci.exhaust.safe_files import check_target

        check_target(
            args.out, "--out"
        )  # before the warehouse is read: a device, FIFO, link or folder is refused
        from airflow_provider_uci.analytics.report import run_report_command

        return run_report_command(args)
    if args.command == "demo":
        from airflow_provider_uci.demo import run_demo

        return run_demo(args.workdir, bots=args.bots, events=args.events)
    parser.error("unknown command")


if __name__ == "__main__":
    sys.exit(main())
