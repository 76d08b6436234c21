"""Benchmark: what hostile input costs a load, in time and memory, and that it leaves the tables alone.

Builds hostile files in a temporary folder and runs ``uci-exhaust load`` on each, in a child process whose
wall time and peak RSS are printed (measured by a small wrapper process, so that nothing else's RSS
counts), with the size of the reject file it left, then checks that the load failed with exit code 2 and
that the warehouse is unchanged:

- a zip bomb: a private exhaust zip of about 3 MB that holds a header and one line of 3 GiB
  (declaring its true size: refused before anything is unzipped), and the same zip declaring 1 KiB
  (unzipped no further than it said, then refused as corrupt);
- a response exhaust CSV whose one record holds a value of 512 MiB on one line (refused when a record
  passes 16 Mi characters, having read no more of it);
- a response exhaust of a header and 1 GiB of blank lines (the read stops at the first reject past
  ``--max-rejects``, 0 by default; a run of blank lines is one entry of the reject file);
- a private exhaust zip of 4,287 bytes holding a header and 4 MiB of newlines (refused: more than 100
  times the zip's size);
- a response exhaust of a header and 20 MiB of blank lines loaded with ``--max-rejects 1000000``
  (every line a reject, counted in one entry: the reject file stays one line).

Targets: each fails within 10 s, at a peak RSS under 400 MB, with a reject file under 1 MB.

    uv run python tests/benchmarks/hostile_input.py [--bomb-gib 3] [--field-mib 512] [--blank-gib 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUNBIRD = ROOT / "tests" / "fixtures" / "sunbird"
TARA_RESPONSE = SUNBIRD / "response-exhaust-2022-06-sample.csv"
TARA_PRIVATE = SUNBIRD / "private-exhaust-2022-06-sample.csv"
PRIVATE_HEADER = b"Conversation ID,Conversation Name,Decrypted Device ID,Encrypted Device ID,Device UUID\n"
MIB = 1 << 20
TIME_TARGET = 10.0
RSS_TARGET_MB = 400
REJECTS_TARGET_BYTES = 1_000_000

#: Runs a command and prints its exit code, wall time and peak RSS (its own children's, so only its).
MEASURE = r"""
import json, resource, subprocess, sys, time
began = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"returncode": done.returncode, "seconds": time.perf_counter() - began,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr": done.stderr, "stdout": done.stdout}))
"""


def bomb_zip(target: Path, line_bytes: int, *, declared: int | None = None, chunk: int = 8 * MIB) -> int:
    """Write a zip whose one entry ``users.csv`` is the private exhaust header, then one line of
    ``line_bytes`` bytes (``x`` repeated), deflated; its headers declare ``declared`` bytes (default: the
    true size). Return the zip's size in bytes.

    Each whole ``chunk`` of the line is deflated after a full flush, which starts the compressor afresh,
    so all of them deflate to the same bytes: those are made once and written again (a 3 GiB line takes
    seconds, not minutes); only the CRC is computed over every byte.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    name = b"users.csv"
    piece = b"x" * chunk
    whole, rest = divmod(line_bytes, chunk)
    crc = zlib.crc32(PRIVATE_HEADER)
    with target.open("wb") as out:
        out.write(b"\0" * (30 + len(name)))  # the local header, written once the sizes are known
        out.write(compressor.compress(PRIVATE_HEADER) + compressor.flush(zlib.Z_FULL_FLUSH))
        if whole:
            deflated = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
            again = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
            assert again == deflated, "a full flush starts the compressor afresh"
            for _ in range(whole):
                out.write(deflated)
                crc = zlib.crc32(piece, crc)
        tail = piece[:rest] + b"\n"
        out.write(compressor.compress(tail) + compressor.flush())
        crc = zlib.crc32(tail, crc) & 0xFFFFFFFF
        size = len(PRIVATE_HEADER) + line_bytes + 1
        compressed = out.tell() - 30 - len(name)
        stated = size if declared is None else declared
        if stated >= 1 << 32 or compressed >= 1 << 32:
            raise ValueError("bomb_zip writes no zip64 records: keep the entry under 4 GiB")
        central = (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                compressed,
                stated,
                len(name),
                0,
                0,
                0,
                0,
                0o100600 << 16,
                0,
            )
            + name
        )
        end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), 30 + len(name) + compressed, 0)
        out.write(central + end)
        out.seek(0)
        out.write(
            struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, compressed, stated, len(name), 0)
            + name
        )
        return out.seek(0, os.SEEK_END)


def long_field_csv(target: Path, field_bytes: int, *, newline_every: int = 0, chunk: int = 8 * MIB) -> int:
    """Write the Tara sample's header and its first one-line record, then a record like it whose
    Question Response is ``field_bytes`` bytes (quoted, with a line break every ``newline_every`` bytes if
    given). Return the file's size."""
    lines = TARA_RESPONSE.read_text(encoding="utf-8").split("\n")
    header = lines[0]
    columns = header.split(",")
    first = next(
        line for line in lines[1:] if line.startswith("ASSESS:") and line.count(",") == header.count(",")
    )
    at = columns.index("Question Response")
    values = first.split(",")
    before, after = ",".join(values[:at]), ",".join(values[at + 1 :])
    line = (b"y" * (newline_every - 1) + b"\n") if newline_every else b""
    piece = (line * max(1, chunk // len(line))) if line else b"y" * chunk
    with target.open("wb") as out:
        out.write(f'{header}\n{first}\n{before},"'.encode())
        left = field_bytes
        while left > 0:
            part = piece if left >= len(piece) else piece[:left]
            out.write(part)
            left -= len(part)
        out.write(f'",{after}\n'.encode())
        return out.tell()


def blank_lines_csv(target: Path, blank_bytes: int, chunk: int = 8 * MIB) -> int:
    """Write the Tara sample's header, then ``blank_bytes`` line ends. Return the file's size."""
    header = TARA_RESPONSE.read_bytes().split(b"\n", 1)[0] + b"\n"
    piece = b"\n" * chunk
    with target.open("wb") as out:
        out.write(header)
        left = blank_bytes
        while left > 0:
            out.write(piece if left >= chunk else piece[:left])
            left -= chunk
        return out.tell()


def newline_zip(target: Path, newline_bytes: int = 4 * MIB) -> int:
    """Write a private exhaust zip of the header and ``newline_bytes`` line ends, deflated at level 9 (4 MiB
    make a zip of 4,287 bytes). Return the zip's size."""
    import zipfile

    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("users.csv", PRIVATE_HEADER + b"\n" * newline_bytes)
    return target.stat().st_size


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``command`` under :data:`MEASURE`; its exit code, seconds, peak RSS and output."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(done.stdout)


def uci_exhaust() -> list[str]:
    script = Path(sys.executable).with_name("uci-exhaust")
    return [str(script)] if script.exists() else [sys.executable, "-m", "airflow_provider_uci.cli"]


def table_state(database: Path) -> list[tuple[object, ...]]:
    """Every row of every table of a SQLite file, to compare before and after."""
    with sqlite3.connect(database) as conn:
        tables = [
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        state = [
            (table, *row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')
        ]
    conn.close()
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bomb-gib", type=float, default=3.0, help="the zip bomb's line, in GiB (default 3)")
    parser.add_argument(
        "--field-mib", type=int, default=512, help="the CSV's long value, in MiB (default 512)"
    )
    parser.add_argument(
        "--blank-gib", type=float, default=1.0, help="the CSV of blank lines, in GiB (default 1)"
    )
    parser.add_argument("--keep", type=Path, help="build the files here and keep them")
    options = parser.parse_args()
    folder = options.keep or Path(tempfile.mkdtemp(prefix="uci-hostile-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        warehouse = folder / "warehouse.db"
        url = f"sqlite:///{warehouse}"
        subprocess.run(
            [
                *uci_exhaust(),
                "load",
                "--response",
                str(TARA_RESPONSE),
                "--private",
                str(TARA_PRIVATE),
                "--warehouse",
                url,
                "--rejects",
                str(folder / "seed.rejects.jsonl"),
            ],
            check=True,
            capture_output=True,
        )
        before = table_state(warehouse)
        began = time.perf_counter()
        line = int(options.bomb_gib * (1 << 30))
        bomb = folder / "bomb.zip"
        bomb_size = bomb_zip(bomb, line)
        liar = folder / "bomb-declaring-1KiB.zip"
        bomb_zip(liar, line, declared=1024)
        field = folder / "long-field.csv"
        field_size = long_field_csv(field, options.field_mib * MIB)
        blank = folder / "blank-lines.csv"
        blank_size = blank_lines_csv(blank, int(options.blank_gib * (1 << 30)))
        blank_20 = folder / "blank-lines-20MiB.csv"
        blank_lines_csv(blank_20, 20 * MIB)
        newlines = folder / "newlines.zip"
        newlines_size = newline_zip(newlines)
        print(
            f"built in {time.perf_counter() - began:.1f} s: {bomb.name} {bomb_size / 1e6:.1f} MB holding "
            f"{line / (1 << 30):.2f} GiB on one line; {field.name} {field_size / 1e6:.0f} MB with one "
            f"{options.field_mib} MiB value; {blank.name} {blank_size / 1e6:.0f} MB of blank lines; "
            f"{newlines.name} {newlines_size} bytes holding 4 MiB of newlines"
        )
        env = {**os.environ, "TMPDIR": str(folder)}
        cases = [
            ("zip bomb, true size declared", ["--response", str(TARA_RESPONSE), "--private", str(bomb)]),
            ("zip bomb, 1 KiB declared", ["--response", str(TARA_RESPONSE), "--private", str(liar)]),
            (f"a {options.field_mib} MiB value", ["--response", str(field), "--private", str(TARA_PRIVATE)]),
            (
                f"{options.blank_gib:g} GiB of blank lines",
                ["--response", str(blank), "--private", str(TARA_PRIVATE)],
            ),
            (
                f"{newlines_size} B zip of 4 MiB newlines",
                ["--response", str(TARA_RESPONSE), "--private", str(newlines)],
            ),
            (
                "20 MiB blank, max-rejects 1e6",
                [
                    "--response",
                    str(blank_20),
                    "--private",
                    str(TARA_PRIVATE),
                    "--conversation-id",
                    "c387e983-f87b-4471-aef5-c31634fd1433",
                    "--max-rejects",
                    "1000000",
                ],
            ),
        ]
        met = True
        for label, files in cases:
            rejects = folder / "rejects.jsonl"
            rejects.unlink(missing_ok=True)
            result = measure(
                [*uci_exhaust(), "load", *files, "--warehouse", url, "--rejects", str(rejects)], env=env
            )
            unchanged = table_state(warehouse) == before
            scratch = sorted(path.name for path in folder.glob("uci-load-*"))
            reject_bytes = rejects.stat().st_size if rejects.exists() else 0
            ok = (
                result["returncode"] == 2
                and unchanged
                and not scratch
                and result["seconds"] < TIME_TARGET
                and result["peak_rss_mb"] < RSS_TARGET_MB
                and reject_bytes < REJECTS_TARGET_BYTES
            )
            met = met and ok
            message = str(result["stderr"]).strip().splitlines()
            print(
                f"{label:32} exit {result['returncode']}  {result['seconds']:5.2f} s  peak RSS "
                f"{result['peak_rss_mb']:6.1f} MB  rejects {reject_bytes:>7} B  tables "
                f"{'unchanged' if unchanged else 'CHANGED'}  scratch {'removed' if not scratch else scratch}  "
                f"{'ok' if ok else 'MISSED'}"
            )
            print(f"  {message[-1][:300] if message else '(no message)'}")
        print(
            f"targets (exit 2, tables unchanged, < {TIME_TARGET:.0f} s, < {RSS_TARGET_MB} MB, reject file < "
            f"{REJECTS_TARGET_BYTES // 1000} kB): {'met' if met else 'MISSED'}"
        )
        return 0 if met else 1
    finally:
        if options.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
