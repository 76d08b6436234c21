"""The README is the front door: short, its two commands exactly, and a link to every page of docs/.

The two quickstart commands are run for real elsewhere: ``uci-exhaust demo`` by tests/test_demo.py,
the test command by CI itself. Every link and command of the README (and of docs/) is checked by
tests/test_docs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_readme_is_under_250_lines() -> None:
    assert len(README.splitlines()) < 250


def test_the_quickstart_has_exactly_the_two_commands() -> None:
    found = re.findall(r"```bash\n(.*?)\n```", section("Quickstart"), flags=re.S)
    assert found == ["uv run uci-exhaust demo", "uv run --locked pytest"]


def test_ci_runs_the_readme_test_command_after_lint_format_and_types() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    development = section("Development")
    for command in (
        "uv run --locked ruff check .",
        "uv run --locked ruff format --check .",
        "uv run --locked mypy",
    ):
        assert command in development, command
    assert "uv run --locked pytest" in ci, "CI runs the README's test command"
    assert ci.index("uv run --locked ruff check .") < ci.index("uv run --locked pytest")


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    pages = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert pages - linked == set()
    assert "docs/examples/" in linked


def test_the_install_section_names_the_base_install_and_every_extra() -> None:
    install = section("Install")
    assert "pip install airflow-provider-uci\n" in install
    for extra in ("emulator", "analytics", "postgres", "openlineage", "all"):
        assert f"`airflow-provider-uci[{extra}]`" in install, extra


def test_the_readme_shows_the_flow_of_the_dag() -> None:
    flow = section("How it works")
    for step in ("submit", "wait", "copy", "join_and_load"):
        assert re.search(rf"^    {step} ", flow, flags=re.M), step
