"""Benchmark: ``uci-exhaust report`` over many answers, many bots and many distinct answers.

Fills a responses table (made by a small load, so it has its views) with answers written by the database
itself: per bot, devices answering six questions in sessions of a day, four questions multiple choice,
a tenth withheld, Hindi titles, 29 days. Three cases (``--case``):

- ``fleet``: N answers (default 1,000,000) of 20 bots; the fleet's page and one bot's page;
- ``distinct``: 200,000 answers of one bot whose first question has 30,000 distinct answers;
- ``bots``: 300,000 answers of 300 bots; the fleet's page.

Each report runs as ``uci-exhaust report`` in a child process: wall time, CPU time (user and system:
the part a shared machine's load does not stretch; PostgreSQL's own work is in the wall time only) and
peak RSS (the child's ``ru_maxrss``), and the page's size. The machine's load average is printed beside the figures.
Targets: each report < 20 s and < 500 MB.

    uv run python tests/benchmarks/report.py [--rows 1000000] [--backend postgres|sqlite|both] [--case all|fleet|distinct|bots]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from airflow_provider_uci.exhaust.load import load_exhaust  # noqa: E402
from airflow_provider_uci.exhaust.warehouse import STORED_RESPONSE_COLUMNS, open_warehouse  # noqa: E402

POSTGRES_URL = os.environ.get("UCI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED_FILE = ROOT / "tests" / "fixtures" / "sunbird" / "response-exhaust-2022-04-sample.csv"
BOT = "bench-bot-0"
TABLE = "uci_responses"

#: One generated answer per ``g`` (``h`` within its bot), in the table's column order; ``{day}`` is the
#: dialect's IST sync day of ``ts``.
_ROW_SELECT = """
SELECT 'bench-bot-' || (g % {bots}), 'ASSESS:' || g, 'device-' || ((h / 6) % {devices}), 'question-' || (h % 6),
  'Bench bot ' || (g % {bots}) || ' $5 सर्वे', 'session-' || ((h / 6) % {devices}) || '-' || (h / {per_day}),
  CASE WHEN h % 6 < 4 THEN 'mcq' ELSE 'ftp' END, 'प्रश्न ' || (h % 6 + 1) || ': आपका अनुभव कैसा रहा?', '',
  (g * 7) % 90 + 1, 1, 1, '[{{"1":{{"text":"1 हाँ"}}}},{{"2":{{"text":"2 नहीं"}}}}]',
  CASE WHEN h % 10 = 0 THEN '' WHEN h % 6 = 0 THEN '[{{"ans1":"answer ' || (h / 6 % {distinct}) || '"}}]'
  ELSE '[{{"' || (h % 4 + 1) || '":{{"text":"' || (h % 4 + 1) || ' विकल्प"}}}}]' END,
  'question./data/group_1[1]/question_' || (h % 6 + 1) || '[1]', h % 6 = 5, ts, ts, NULL, NULL,
  {day}, 1
"""

_POSTGRES_ROWS = (
    "INSERT INTO uci_responses ({columns})"
    + _ROW_SELECT.replace("{day}", "(ts AT TIME ZONE 'Asia/Kolkata')::date")
    + """FROM (SELECT g, g / {bots} AS h,
      timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' * (2500000.0 / {rows}) AS ts
      FROM generate_series(1, {rows}) AS g) AS s
"""
)

_SQLITE_ROWS = (
    """
WITH RECURSIVE c(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM c WHERE g < {rows}),
s AS (SELECT g, g / {bots} AS h, strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + g * (2500000.0 / {rows}), 'unixepoch')
      AS ts FROM c)
INSERT INTO uci_responses ({columns})"""
    + _ROW_SELECT.replace("{day}", "date(ts, '+5 hours', '+30 minutes')")
    + """FROM s
"""
)
#: The cases: answers (``None``: ``--rows``), bots, distinct answers of a bot's first question, pages.
CASES = {
    "fleet": (None, 20, 4, ("fleet", "one bot")),
    "distinct": (200_000, 1, 30_000, ("one bot",)),
    "bots": (300_000, 300, 4, ("fleet",)),
}


def fill(url: str, rows: int, bots: int, distinct: int) -> None:
    """Make the table (and its views) with a small load, then write ``rows`` answers of ``bots`` bots."""
    load_exhaust(response_csv=SEED_FILE, private=None, warehouse_url=url)
    columns = ", ".join(STORED_RESPONSE_COLUMNS)
    shape = {
        "columns": columns,
        "rows": rows,
        "bots": bots,
        "distinct": distinct,
        "devices": max(50, rows // bots // 60),
        "per_day": max(1, rows // bots // 29),
    }
    started = time.perf_counter()
    with open_warehouse(url) as warehouse:
        if warehouse.backend == "postgres":
            warehouse._execute(_POSTGRES_ROWS.format(**shape))
            warehouse._conn.commit()
            warehouse._conn.autocommit = True
            warehouse._execute("VACUUM ANALYZE uci_responses")
        else:
            warehouse._execute("BEGIN")
            warehouse._execute(_SQLITE_ROWS.format(**shape))
            warehouse._execute("COMMIT")
            warehouse._execute("ANALYZE")
    print(
        f"  filled {rows:,} answers of {bots} bot(s), {distinct:,} distinct answers to a question, in "
        f"{time.perf_counter() - started:.1f} s"
    )


def run_report(url: str, out: Path, *extra: str) -> tuple[float, float, float]:
    """Wall time (s), CPU time (s: user and system) and peak RSS (MB) of ``uci-exhaust report`` in a child
    process (the CPU time is what a shared machine's load does not stretch)."""
    script = Path(sys.executable).with_name("uci-exhaust")
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(script), "report", "--warehouse", url, "--out", str(out), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, _, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if child.stderr is not None:
        errors = child.stderr.read().decode()
        if errors.strip():
            print(errors, file=sys.stderr)
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench(backend: str, case: str, rows: int, scratch: Path) -> None:
    count, bots, distinct, pages = CASES[case]
    rows = count or rows
    print(f"{backend}, {case}:")
    if backend == "sqlite":
        url = f"sqlite:///{scratch / f'{case}.db'}"
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
        fill(url, rows, bots, distinct)
        for label in pages:
            extra = ("--conversation-id", BOT) if label == "one bot" else ()
            out = scratch / f"{backend}-{case}-{label.replace(' ', '-')}.html"
            load = os.getloadavg()[0]
            elapsed, cpu, rss = run_report(url, out, *extra)
            print(
                f"  report ({label}): {elapsed:.1f} s (CPU {cpu:.1f} s), peak RSS {rss:.0f} MB, page {out.stat().st_size / 1024:.0f} KiB "
                f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after)"
            )
    finally:
        if drop is not None:
            drop()
        if backend == "sqlite":
            (scratch / f"{case}.db").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--case", choices=["all", *CASES], default="all")
    args = parser.parse_args()
    print(
        f"{args.rows:,} answers; {os.cpu_count()} CPUs; own peak RSS so far "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    with tempfile.TemporaryDirectory(prefix="uci-report-bench-") as scratch:
        for backend in ("postgres", "sqlite") if args.backend == "both" else (args.backend,):
            for case in CASES if args.case == "all" else (args.case,):
                bench(backend, case, args.rows, Path(scratch))


if __name__ == "__main__":
    main()
