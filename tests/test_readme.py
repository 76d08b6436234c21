"""The README's commands stay true: each one parses with the tool it names, and its files exist.

The two quickstart commands are run for real elsewhere: ``uci-exhaust demo`` by tests/test_demo.py,
the test command by CI itself.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from airflow_provider_uci.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def test_the_quickstart_has_exactly_the_two_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```bash\n(.*?)\n```", quickstart, flags=re.S)
    assert found == ["uv run uci-exhaust demo", "uv run --locked pytest"]
    assert "uv run --locked pytest" in (ROOT / ".ci" / "run").read_text(), "CI runs the README's test command"


@pytest.mark.parametrize("line", [c for c in commands() if "uci-exhaust" in c.split()[:3]])
def test_uci_exhaust_commands_parse(line: str) -> None:
    argv = shlex.split(line)
    argv = argv[argv.index("uci-exhaust") + 1 :]
    build_parser().parse_args(argv)


@pytest.mark.parametrize("line", [c for c in commands() if c.startswith("airflow ")])
def test_airflow_commands_parse(line: str) -> None:
    from airflow.cli.cli_parser import get_parser

    get_parser().parse_args(shlex.split(line)[1:])


@pytest.mark.parametrize("line", [c for c in commands() if c.startswith("uv run python ")])
def test_benchmark_scripts_exist(line: str) -> None:
    assert (ROOT / shlex.split(line)[3]).is_file()


def test_connection_example_is_a_uci_connection() -> None:
    (line,) = [c for c in commands() if c.startswith("export AIRFLOW_CONN_UCI_EXHAUST_DEFAULT=")]
    connection = json.loads(shlex.split(line)[1].split("=", 1)[1])
    assert connection["conn_type"] == "uci_exhaust"
    assert set(connection["extra"]) == {"channel_id", "requested_by", "zip_password"}


def test_every_command_is_checked() -> None:
    checked = [
        c
        for c in commands()
        if "uci-exhaust" in c.split()[:3]
        or c.startswith(("airflow ", "uv run python ", "export AIRFLOW_CONN_"))
    ]
    rest = [c for c in commands() if c not in checked]
    assert rest == ["uv run --locked pytest"], rest


def test_the_map_of_the_code_names_real_paths() -> None:
    """Each path in the map exists, read under the folder entry it is indented beneath."""
    code_map = README.split("## Map of the code", 1)[1].split("```")[1]
    folders: list[tuple[int, Path]] = []
    seen = 0
    for indent, path in re.findall(r"^( *)([\w./-]+\.py|[\w./-]+/)(?=\s|$)", code_map, flags=re.M):
        while folders and folders[-1][0] >= len(indent):
            folders.pop()
        where = (folders[-1][1] if folders else ROOT) / path
        assert where.exists(), f"{path} (read as {where.relative_to(ROOT)})"
        if path.endswith("/"):
            folders.append((len(indent), where))
        seen += 1
    assert seen > 40 and (ROOT / "airflow_provider_uci" / "exhaust" / "warehouse" / "schema.py").exists()
