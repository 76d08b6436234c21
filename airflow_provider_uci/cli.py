"""``uci-exhaust``: the command line of airflow-provider-uci."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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

With no configuration, the API key 'dev-key' (consumer 'dev-consumer') may use channel 'dev-channel'.
A fault rate is one number for every route (0.1) or per route (read=0.5,submit=0.1); routes are
submit, read, list, search and download.
"""


def _add_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="serve the Data Exhaust API",
        description="Serve the Data Exhaust API at /dataset/v1/request/... and /api/dataset/v1/request/..., "
        "the internal POST /request/search, signed downloads and /admin routes.",
        epilog=EMULATOR_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    serve.add_argument("--data-dir", type=Path, help="job store and local blobs (default ./.uci-emulator)")
    serve.add_argument("--database-url", help="keep the job store in PostgreSQL (postgresql://...)")
    serve.add_argument("--api-key", action="append", metavar="KEY=CONSUMER",
                       help="an API key and the consumer it identifies; repeatable; replaces the default dev-key")
    serve.add_argument("--authorize", action="append", metavar="CONSUMER=CHANNEL",
                       help="allow a consumer to use a channel; repeatable; replaces the default")
    serve.add_argument("--timezone", help="time zone of the submission date in request ids (default UTC)")
    serve.add_argument("--now", help="start the clock at this ISO date-time (it then ticks in real time)")
    serve.add_argument("--expiry-seconds", type=int, help="signed URL and expiresAt lifetime (default 1800)")
    serve.add_argument("--storage", choices=["local", "azure"], help="blob storage backend (default local)")
    serve.add_argument("--storage-account", help="account name in stored URLs of local storage")
    serve.add_argument("--azure-connection-string", help="Azure Blob (or Azurite) connection string")
    serve.add_argument("--signing-key", help="HMAC key of local signed URLs")
    serve.add_argument("--server-error-delay", type=float,
                       help="seconds before a 500 answers (the real service takes 20)")
    serve.add_argument("--fault-500", metavar="RATE", help="rate of HTTP 500 with the error envelope")
    serve.add_argument("--fault-429", metavar="RATE", help="rate of HTTP 429 with Retry-After")
    serve.add_argument("--retry-after", metavar="SECONDS", help="Retry-After of injected 429s (default 1)")
    serve.add_argument("--fault-latency", metavar="RATE", help="rate of calls that get added latency")
    serve.add_argument("--latency-seconds", metavar="SECONDS", help="added latency (default 2)")
    serve.add_argument("--fault-drop", metavar="RATE", help="rate of connections dropped without an answer")
    serve.add_argument("--fault-truncate", metavar="RATE", help="rate of downloads cut short")
    serve.add_argument("--fault-seed", metavar="N", help="seed of the fault draws, for repeatable runs")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")


def _emulator_settings(args: argparse.Namespace):  # noqa: ANN202
    from airflow_provider_uci.emulator.config import EmulatorSettings, parse_instant, parse_pairs, parse_zone
    from airflow_provider_uci.emulator.faults import FaultSettings

    overrides: dict[str, object] = {
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "expiry_seconds": args.expiry_seconds,
        "storage": args.storage,
        "storage_account": args.storage_account,
        "azure_connection_string": args.azure_connection_string,
        "signing_key": args.signing_key,
        "server_error_delay": args.server_error_delay,
    }
    if args.api_key:
        overrides["api_keys"] = dict(pair for item in args.api_key for pair in parse_pairs(item, "--api-key"))
    if args.authorize:
        overrides["authorized"] = {pair for item in args.authorize for pair in parse_pairs(item, "--authorize")}
    if args.timezone:
        overrides["timezone"] = parse_zone(args.timezone, "--timezone")
    if args.now:
        from zoneinfo import ZoneInfo

        tz = overrides.get("timezone") or ZoneInfo("UTC")
        overrides["now"] = parse_instant(args.now, "--now", tz)  # type: ignore[arg-type]
    overrides["faults"] = FaultSettings.from_env(
        os.environ, error_500=args.fault_500, error_429=args.fault_429, retry_after=args.retry_after,
        latency=args.fault_latency, latency_seconds=args.latency_seconds, drop=args.fault_drop,
        truncate=args.fault_truncate, seed=args.fault_seed,
    )
    settings = EmulatorSettings.from_env(**overrides)
    return settings


def build_parser() -> argparse.ArgumentParser:
    """The ``uci-exhaust`` argument parser."""
    parser = argparse.ArgumentParser(prog="uci-exhaust", description="Sunbird UCI Data Exhaust tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    emulator = commands.add_parser("emulator", help="the local Data Exhaust service",
                                   description="The local Data Exhaust service.")
    emulator_commands = emulator.add_subparsers(dest="emulator_command", required=True)
    _add_serve(emulator_commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``uci-exhaust``; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from airflow_provider_uci.emulator.config import SettingsError
    from airflow_provider_uci.emulator.faults import FaultSpecError

    try:
        if args.command == "emulator" and args.emulator_command == "serve":
            settings = _emulator_settings(args)  # before the server's heavy imports: bad settings fail fast
            from airflow_provider_uci.emulator.server import serve

            print(f"uci-exhaust emulator: http://{args.host}:{args.port}/api  (data: {settings.data_dir}, "
                  f"storage: {settings.storage}, store: {'postgresql' if settings.database_url else 'sqlite'})",
                  flush=True)
            serve(settings, host=args.host, port=args.port, log_level=args.log_level)
            return 0
    except (SettingsError, FaultSpecError) as exc:
        print(f"uci-exhaust: error: {exc}", file=sys.stderr)
        return 2
    parser.error("unknown command")
    return 2


if __name__ == "__main__":
    sys.exit(main())
