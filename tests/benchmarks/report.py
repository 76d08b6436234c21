"""Benchmark: ``uci-exhaust report`` over N answers (default 1,000,000), and one bot's funnel query.

Fills a responses table (made by a small load, so it has its views and index) with N answers of one
bot, written by the database itself: 20,000 devices, six questions answered by fewer devices each
(a funnel), four of them multiple choice, a tenth withheld, Hindi titles, 29 days. Then:

- the report of the fleet and of the bot, each ``uci-exhaust report`` in a child process: wall time
  and peak RSS (the child's ``ru_maxrss``);
- PostgreSQL only: the bot's funnel query (``exhaust.warehouse.views.funnel_sql``) and its question stats
  (``question_stats_sql``), best and median of ``--repeat`` runs, timed in the server's own
  ``EXPLAIN ANALYZE`` terms and as the client sees them; then the funnel again once the index
  ``<table>_funnel`` is made (``create_funnel_index``, which loads do not do).

Targets: the report < 30 s and < 1 GB; the funnel query < 1 s on PostgreSQL.

    uv run python tests/benchmarks/report.py [--rows 1000000] [--backend postgres|sqlite|both] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from airflow_provider_uci.exhaust.warehouse.views import Scope, create_funnel_index, funnel_sql, question_stats_sql  # noqa: E402
from airflow_provider_uci.exhaust.load import load_exhaust  # noqa: E402
from airflow_provider_uci.exhaust.warehouse import STORED_RESPONSE_COLUMNS, open_warehouse  # noqa: E402

POSTGRES_URL = os.environ.get("UCI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED_FILE = ROOT / "tests" / "fixtures" / "sunbird" / "response-exhaust-2022-04-sample.csv"
BOT = "bench-bot-0001"
TABLE = "uci_responses"

#: One generated answer per ``g``, in the table's column order; ``{day}`` is the dialect's IST sync day of ``ts``.
_ROW_SELECT = """
SELECT '{bot}', 'ASSESS:' || g, 'device-' || ((g / 6) % (20000 - 3000 * (g % 6))), 'question-' || (g % 6),
  'Bench bot', 'session-' || ((g / 6) % (20000 - 3000 * (g % 6))) || '-' || (g / 34483),
  CASE WHEN g % 6 < 4 THEN 'mcq' ELSE 'ftp' END, 'प्रश्न ' || (g % 6 + 1) || ': आपका अनुभव कैसा रहा?', '',
  (g * 7) % 90, 1, 1, '[{{"1":{{"text":"1 हाँ"}}}},{{"2":{{"text":"2 नहीं"}}}}]',
  CASE WHEN g % 10 = 0 THEN '' ELSE '[{{"' || (g % 4 + 1) || '":{{"text":"' || (g % 4 + 1) || ' विकल्प"}}}}]' END,
  'question./data/group_1[1]/question_' || (g % 6 + 1) || '[1]', g % 6 = 5, ts, ts, NULL, NULL,
  {day}, 1
"""

_POSTGRES_ROWS = "INSERT INTO uci_responses ({columns})" + _ROW_SELECT.replace(
    "{day}", "(ts AT TIME ZONE 'Asia/Kolkata')::date") + """FROM (SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '2.5 seconds' AS ts
      FROM generate_series(1, {rows}) AS g) AS s
"""

_SQLITE_ROWS = """
WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < {rows}),
s AS (SELECT g, strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + g * 2.5, 'unixepoch') AS ts FROM c)
INSERT INTO uci_responses ({columns})""" + _ROW_SELECT.replace("{day}", "date(ts, '+5 hours', '+30 minutes')") + """FROM s
"""


def fill(url: str, rows: int) -> None:
    """Make the table (and its views) with a small load, then write ``rows`` answers of one bot."""
    load_exhaust(response_csv=SEED_FILE, private=None, warehouse_url=url)
    columns = ", ".join(STORED_RESPONSE_COLUMNS)
    started = time.perf_counter()
    with open_warehouse(url) as warehouse:
        if warehouse.backend == "postgres":
            warehouse._execute(_POSTGRES_ROWS.format(columns=columns, bot=BOT, rows=rows))
            warehouse._conn.commit()
            warehouse._conn.autocommit = True
            warehouse._execute("VACUUM ANALYZE uci_responses")
        else:
            warehouse._execute("BEGIN")
            warehouse._execute(_SQLITE_ROWS.format(columns=columns, bot=BOT, rows=rows))
            warehouse._execute("COMMIT")
            warehouse._execute("ANALYZE")
    print(f"  filled {rows:,} answers in {time.perf_counter() - started:.1f} s")


def run_report(url: str, out: Path, *extra: str) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of ``uci-exhaust report`` in a child process."""
    script = Path(sys.executable).with_name("uci-exhaust")
    started = time.perf_counter()
    child = subprocess.Popen([str(script), "report", "--warehouse", url, "--out", str(out), *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if child.stderr is not None:
        errors = child.stderr.read().decode()
        if errors.strip():
            print(errors, file=sys.stderr)
    return elapsed, usage.ru_maxrss / 1024


def time_query(url: str, build, repeat: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    """Client-side and server-side (``EXPLAIN ANALYZE``'s execution time) seconds of each run."""
    client, server = [], []
    with open_warehouse(url) as warehouse:
        sql, params = build(TABLE, warehouse.backend, Scope(BOT))
        with warehouse._conn.cursor() as cursor:  # as the report's session runs it
            cursor.execute("SET jit = off")
            cursor.execute("SET work_mem = '64MB'")
        warehouse._conn.commit()
        for _ in range(repeat):
            with warehouse._conn.cursor() as cursor:
                started = time.perf_counter()
                cursor.execute(sql, params)
                cursor.fetchall()
                client.append(time.perf_counter() - started)
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
                server.append(cursor.fetchone()[0][0]["Execution Time"] / 1000)
            warehouse._conn.rollback()
    return client, server


def bench(backend: str, rows: int, repeat: int, scratch: Path) -> None:
    print(f"{backend}:")
    if backend == "sqlite":
        url = f"sqlite:///{scratch / 'warehouse.db'}"
        drop = None
    else:
        import psycopg2

        name = f"uci_bench_{uuid.uuid4().hex[:10]}"
        admin = psycopg2.connect(POSTGRES_URL)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"

        def drop() -> None:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    try:
        fill(url, rows)
        for label, extra in (("fleet", ()), ("one bot", ("--conversation-id", BOT))):
            elapsed, rss = run_report(url, scratch / f"{backend}-{label.replace(' ', '-')}.html", *extra)
            size = (scratch / f"{backend}-{label.replace(' ', '-')}.html").stat().st_size
            print(f"  report ({label}): {elapsed:.1f} s, peak RSS {rss:.0f} MB, page {size / 1024:.0f} KiB")
        if backend == "postgres":
            queries = [("funnel query", funnel_sql), ("question stats query", question_stats_sql),
                       ("funnel query with <table>_funnel", funnel_sql)]
            for label, build in queries:
                if label.endswith("_funnel"):
                    with open_warehouse(url) as warehouse:
                        started = time.perf_counter()
                        create_funnel_index(warehouse, TABLE)
                        warehouse._conn.autocommit = True
                        warehouse._execute("VACUUM ANALYZE uci_responses")
                    print(f"  <table>_funnel made (and the table vacuumed) in {time.perf_counter() - started:.1f} s")
                client, server = time_query(url, build, repeat)
                print(f"  {label} (one bot, {rows:,} rows): best {min(client):.3f} s, median "
                      f"{statistics.median(client):.3f} s (server: best {min(server):.3f} s)")
    finally:
        if drop is not None:
            drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.rows:,} answers; {os.cpu_count()} CPUs; own peak RSS so far "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    with tempfile.TemporaryDirectory(prefix="uci-report-bench-") as scratch:
        for backend in (("postgres", "sqlite") if args.backend == "both" else (args.backend,)):
            bench(backend, args.rows, args.repeat, Path(scratch))


if __name__ == "__main__":
    main()
