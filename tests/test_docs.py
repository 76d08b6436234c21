"""The README and docs/ stay true: every relative link resolves, and every shell command shown is real.

A command is checked with the tool it names: ``uci-exhaust`` commands parse with the command line's own
parser and each flag appears in its subcommand's ``--help``; ``airflow`` commands parse with Airflow's;
pytest paths and markers exist; benchmark scripts exist and take the flags shown; ``docker compose``
names services of ``docker-compose.yaml``; ``pip install`` names the package and extras it declares. A
command of no known kind fails, so a new one cannot go unchecked.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ *```([\w-]*)\n(.*?)^ *```", flags=re.S | re.M)
SHELL = {"bash", "sh", "shell", "console"}
#: Inline code that is a command to copy (prose also names flags and fragments, which are not).
INLINE_COMMAND = re.compile(r"^(uv run |pip install |airflow |docker compose )")


@dataclass(frozen=True)
class Command:
    page: str
    text: str

    def __str__(self) -> str:
        return f"{self.page}: {self.text}"


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def without_code(text: str) -> str:
    """The Markdown text with fenced blocks and inline code removed (links there are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def commands() -> list[Command]:
    """Every shell command in a fenced shell block, and every inline one, of every page."""
    found: list[Command] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for language, body in FENCE.findall(text):
            if language not in SHELL:
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.split("  #", 1)[0].strip()
                if line:
                    found.append(Command(relative(page), line))
        for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):
            if INLINE_COMMAND.match(span):
                found.append(Command(relative(page), span))
    return found


def argv_of(command: Command) -> list[str]:
    """The command's words, without leading ``NAME=value`` environment settings."""
    argv = shlex.split(command.text)
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
        argv = argv[1:]
    return argv


def uv_run(argv: list[str]) -> list[str] | None:
    """The program and arguments of ``uv run [--locked] ...``, or None for another command."""
    if argv[:2] != ["uv", "run"]:
        return None
    rest = argv[2:]
    return rest[1:] if rest[:1] == ["--locked"] else rest


def of_kind(kind: str) -> list[Command]:
    return [command for command in commands() if kind_of(command) == kind]


def kind_of(command: Command) -> str:
    argv = argv_of(command)
    program = uv_run(argv)
    if program is not None:
        if program[:1] == ["uci-exhaust"]:
            return "uci-exhaust"
        if program[:1] == ["pytest"]:
            return "pytest"
        if program[:1] == ["python"] and program[1:2] and program[1].startswith("tests/benchmarks/"):
            return "benchmark"
        if program[:1] in (["ruff"], ["mypy"]):
            return "dev tool"
        return "unknown"
    if argv[:1] == ["airflow"]:
        return "airflow"
    if argv[:2] == ["docker", "compose"]:
        return "docker compose"
    if argv[:2] == ["pip", "install"]:
        return "pip install"
    if argv[:1] == ["export"] and argv[1].startswith("AIRFLOW_CONN_"):
        return "airflow connection"
    if argv[:2] == ["python3", "-c"]:
        return "python"
    if argv[:1] == ["cp"]:
        return "copy"
    return "unknown"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), flags=re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links() -> list[tuple[Path, str]]:
    found = []
    for page in PAGES:
        text = without_code(page.read_text(encoding="utf-8"))
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text) + re.findall(
            r'<img src="([^"]+)"', text
        ):
            if not re.match(r"[a-z]+:", target):
                found.append((page, target))
    return found


# -- links ------------------------------------------------------------------------------------------


def test_the_pages_link_to_one_another_and_to_the_code() -> None:
    assert len(PAGES) >= 15, [relative(page) for page in PAGES]
    assert len(links()) >= 60


@pytest.mark.parametrize(("page", "target"), links(), ids=lambda value: str(value).split("/")[-1])
def test_every_relative_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    where = (page.parent / path).resolve() if path else page
    assert where.exists(), f"{relative(page)}: {target} (no {where})"
    assert where == ROOT or ROOT in where.parents, f"{relative(page)}: {target} leaves the repository"
    if anchor:
        assert where.suffix == ".md", (
            f"{relative(page)}: {target}: an anchor into a file that is not Markdown"
        )
        assert anchor in anchors(where), f"{relative(page)}: {target}: no heading #{anchor} in {where.name}"


def test_anchors_are_read_as_github_makes_them() -> None:
    assert slug("1.7 Envelope and errors") == "17-envelope-and-errors"
    assert slug("The `uci_exhaust` DAG") == "the-uci_exhaust-dag"
    assert slug("Capacity: the triggerer and the workers for N bots") == (
        "capacity-the-triggerer-and-the-workers-for-n-bots"
    )


# -- commands ---------------------------------------------------------------------------------------


def test_every_command_is_of_a_kind_checked_here() -> None:
    everything = commands()
    assert len(everything) >= 30
    assert [str(command) for command in everything if kind_of(command) == "unknown"] == []


def subcommand_help(words: list[str]) -> str:
    """The ``--help`` text of the ``uci-exhaust`` subcommand named by ``words``."""
    from airflow_provider_uci.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*words, "--help"])
    assert exited.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("command", of_kind("uci-exhaust"), ids=str)
def test_uci_exhaust_commands_parse_and_each_flag_is_in_the_help(command: Command) -> None:
    from airflow_provider_uci.cli import build_parser

    argv = uv_run(argv_of(command))[1:]  # type: ignore[index]
    build_parser().parse_args(argv)  # exits 2 on a bad subcommand, flag or value
    words = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    shown = subcommand_help(words)
    for flag in (word.split("=", 1)[0] for word in argv if word.startswith("--")):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown), f"{flag} not in {words} --help"


def test_an_unknown_flag_is_caught_even_where_argparse_would_take_its_prefix() -> None:
    shown = subcommand_help(["load"])
    assert "--max-rejects" in shown
    assert not re.search(r"(?<![\w-])--max(?![\w-])", shown)


@pytest.mark.parametrize("command", of_kind("pytest"), ids=str)
def test_pytest_commands_name_real_paths_and_markers(command: Command, pytestconfig: pytest.Config) -> None:
    argv = uv_run(argv_of(command))[1:]  # type: ignore[index]
    markers = {marker.split(":", 1)[0] for marker in pytestconfig.getini("markers")}
    words = iter(argv)
    for word in words:
        if word == "-m":
            expression = next(words)
            named = set(re.findall(r"\w+", expression)) - {"not", "and", "or"}
            assert named and named <= markers, f"{command}: unknown marker in {expression!r}"
        elif word.startswith("-"):
            pytest.fail(f"{command}: a flag this test does not know: {word}")
        else:
            assert (ROOT / word.split("::", 1)[0]).exists(), f"{command}: no {word}"


@pytest.mark.parametrize("command", of_kind("benchmark"), ids=str)
def test_benchmark_commands_name_a_script_and_its_flags(command: Command) -> None:
    argv = uv_run(argv_of(command))[1:]  # type: ignore[index]
    script = ROOT / argv[0]
    assert script.is_file(), f"{command}: no {argv[0]}"
    source = script.read_text(encoding="utf-8")
    for flag in (word.split("=", 1)[0] for word in argv[1:] if word.startswith("--")):
        assert f'"{flag}"' in source, f"{command}: {argv[0]} takes no {flag}"


def test_the_benchmark_table_names_real_scripts_and_their_flags() -> None:
    """The figures' commands, in the table of docs/benchmarks.md, are commands of real scripts too."""
    table = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").split("## Current figures", 1)[1]
    rows = re.findall(r"^\| `([\w.]+\.py)( [^`]*)?`", table, flags=re.M)
    assert len(rows) >= 5
    for script, flags in rows:
        source = (ROOT / "tests" / "benchmarks" / script).read_text(encoding="utf-8")
        for flag in re.findall(r"--[\w-]+", flags):
            assert f'"{flag}"' in source, f"{script} takes no {flag}"


@pytest.mark.parametrize("command", of_kind("dev tool"), ids=str)
def test_lint_and_type_commands_name_installed_tools(command: Command) -> None:
    argv = uv_run(argv_of(command))
    assert argv is not None
    assert (Path(sys.executable).parent / argv[0]).exists(), f"{argv[0]} is not in the environment"
    if argv[0] == "ruff":
        assert argv[1:] in (["check", "."], ["format", "--check", "."]), command


@pytest.mark.parametrize("command", of_kind("airflow"), ids=str)
def test_airflow_commands_parse(command: Command) -> None:
    from airflow.cli.cli_parser import get_parser

    get_parser().parse_args(argv_of(command)[1:])


@pytest.mark.parametrize("command", of_kind("docker compose"), ids=str)
def test_docker_compose_commands_name_services_of_the_compose_file(command: Command) -> None:
    compose = (ROOT / "docker-compose.yaml").read_text(encoding="utf-8")
    services = set(re.findall(r"^  ([\w-]+):$", compose.split("\nvolumes:", 1)[0], flags=re.M))
    argv = argv_of(command)[2:]
    assert argv[0] in {"up", "ps", "exec", "down", "logs"}, command
    if argv[0] == "exec":
        assert argv[1] in services, f"{command}: no service {argv[1]}"
    for scaled in (word.split("=", 1)[0] for word in argv if "=" in word):
        assert scaled in services, f"{command}: no service {scaled}"


@pytest.mark.parametrize("command", of_kind("pip install"), ids=str)
def test_pip_install_names_the_package_and_its_extras(command: Command) -> None:
    installed = importlib.metadata.metadata("airflow-provider-uci")  # the project, as uv synced it
    extras = set(installed.get_all("Provides-Extra") or [])
    for requirement in argv_of(command)[2:]:
        if requirement == "uv":  # the tool the Quickstart needs
            continue
        name, _, rest = requirement.partition("[")
        assert name == installed["Name"], command
        wanted = set(rest.rstrip("]").split(",")) if rest else set()
        assert wanted <= extras, f"{command}: no extra {sorted(wanted - extras)} in the project"


def test_connection_examples_are_uci_connections_with_the_zip_password() -> None:
    found = of_kind("airflow connection")
    assert found
    for command in found:
        _, _, value = argv_of(command)[1].partition("=")
        connection = json.loads(value)
        assert connection["conn_type"] == "uci_exhaust", command
        assert set(connection["extra"]) == {"channel_id", "requested_by", "zip_password"}, command


def test_python_one_liners_compile() -> None:
    found = of_kind("python")
    assert found
    for command in found:
        compile(argv_of(command)[2], str(command), "exec")


def test_files_copied_exist() -> None:
    for command in of_kind("copy"):
        assert (ROOT / argv_of(command)[1]).is_file(), command


# -- names ------------------------------------------------------------------------------------------


def test_the_zip_password_has_one_name() -> None:
    """The deprecated names appear only where a page says they are deprecated."""
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            for old in ("--encryption-key", "UCI_EXHAUST_ENCRYPTION_KEY", "`encryption_key`"):
                if old in line:
                    assert "deprecat" in line or "still read" in line or "real table" in line, (
                        f"{relative(page)}: {line}"
                    )


def test_no_comment_cites_the_contract_by_a_bare_number() -> None:
    """Code cites docs/service-contract.md by section, and each section cited exists."""
    contract = (ROOT / "docs" / "service-contract.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", contract, flags=re.M))
    sections |= set(re.findall(r"^- \*\*(\d+\.\d+) ", contract, flags=re.M))
    cited = set()
    sources = [
        *ROOT.glob("airflow_provider_uci/**/*.py"),
        *ROOT.glob("tests/**/*.py"),
        *ROOT.glob("dags/*.py"),
    ]
    for path in (path for path in sources if "node_modules" not in path.parts):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bcontract (section )?\d", text, flags=re.I), relative(path)
        for citation in re.findall(
            r"docs/service-contract\.md ((?:§[\d.]+(?:-§[\d.]+)?(?:,? (?:and )?)?)+)", text
        ):
            cited |= set(re.findall(r"§(\d+(?:\.\d+)?)", citation))
    assert len(cited) >= 15
    assert cited <= sections, sorted(cited - sections)


# -- the map of the code ----------------------------------------------------------------------------


def test_the_map_of_the_code_names_real_paths() -> None:
    """Each path in docs/code-map.md exists, read under the folder entry it is indented beneath."""
    code_map = (ROOT / "docs" / "code-map.md").read_text(encoding="utf-8").split("```")[1]
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
    assert seen > 40
