"""A command whose extra is not installed says which to install, in one line, with exit code 2.

The development environment has every extra, so a missing one is made here by hiding its modules
(``None`` in ``sys.modules`` is how Python marks a module that cannot be imported). A fresh install
without extras is tested for real in ``tests/test_install.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from airflow_provider_uci.cli import main
from airflow_provider_uci.extras import EXTRAS, MissingExtra, extra_for, missing, require

INSTALL = "pip install 'airflow-provider-uci[{}]'"


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.parametrize(
    ("hidden", "argv", "line"),
    [
        pytest.param(
            ["uvicorn"],
            ["emulator", "serve", "--port", "1"],
            "uci-exhaust emulator: needs the emulator extra: " + INSTALL.format("emulator"),
            id="emulator-serve",
        ),
        pytest.param(
            ["croniter"],
            ["emulator", "run-jobs"],
            "uci-exhaust emulator: needs the emulator extra: " + INSTALL.format("emulator"),
            id="emulator-run-jobs",
        ),
        pytest.param(
            ["matplotlib"],
            ["report", "--warehouse", "sqlite:///{tmp}/w.db", "--out", "{tmp}/r.html"],
            "uci-exhaust report: needs the analytics extra: " + INSTALL.format("analytics"),
            id="report",
        ),
        pytest.param(
            ["fastapi", "matplotlib"],
            ["demo", "--workdir", "{tmp}/demo"],
            "uci-exhaust demo: needs the emulator and analytics extras: "
            + INSTALL.format("emulator,analytics"),
            id="demo-two-extras",
        ),
        pytest.param(
            ["psycopg2"],
            ["report", "--warehouse", "postgresql://nobody@127.0.0.1:1/none", "--out", "{tmp}/r.html"],
            "uci-exhaust report: a PostgreSQL warehouse needs the postgres extra: "
            + INSTALL.format("postgres"),
            id="report-on-postgresql",
        ),
    ],
)
def test_a_missing_extra_is_told_in_one_line_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    hidden: list[str],
    argv: list[str],
    line: str,
) -> None:
    hide(monkeypatch, *hidden)
    code, err = run(capsys, *(arg.format(tmp=tmp_path) for arg in argv))
    assert (code, err) == (2, line + "\n")
    assert not list(tmp_path.iterdir()), "the command stopped before it wrote anything"


def test_with_every_extra_the_same_command_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The check does not stand in the way: the report's command runs (and fails on its input, not on an
    extra: the warehouse has no table yet)."""
    code, err = run(
        capsys, "report", "--warehouse", f"sqlite:///{tmp_path}/w.db", "--out", f"{tmp_path}/r.html"
    )
    assert code == 2 and err.startswith("uci-exhaust: error: ") and "needs the" not in err
    assert err.rstrip().endswith("load an exhaust into it first"), err


def test_an_extra_s_module_missing_deep_in_a_command_is_told_the_same_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module of an extra that no check named before the command started still gives the one line."""
    import airflow_provider_uci.cli as cli

    def load(args: object) -> int:
        raise ModuleNotFoundError("No module named 'psycopg2.pool'", name="psycopg2.pool")

    monkeypatch.setattr(cli, "_load", load)
    code, err = run(capsys, "load", "--warehouse", "sqlite:///unused.db")
    assert (code, err) == (
        2,
        "uci-exhaust load: needs the postgres extra: " + INSTALL.format("postgres") + "\n",
    )


def test_another_missing_module_is_an_ordinary_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import airflow_provider_uci.cli as cli

    def load(args: object) -> int:
        raise ModuleNotFoundError("No module named 'nowhere'", name="nowhere")

    monkeypatch.setattr(cli, "_load", load)
    code, err = run(capsys, "load", "--warehouse", "sqlite:///unused.db")
    assert code == 1 and err == "uci-exhaust: error: ModuleNotFoundError: No module named 'nowhere'\n"


def test_every_extra_is_installed_in_the_development_environment() -> None:
    assert missing(EXTRAS) == []
    require(EXTRAS)  # raises nothing


def test_the_extras_match_pyproject() -> None:
    """Every extra the package names is one ``pyproject.toml`` declares, and ``all`` holds every one."""
    import tomllib

    declared = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    extras = declared["project"]["optional-dependencies"]
    assert set(extras) == {*EXTRAS, "all"}
    assert extras["all"] == [f"airflow-provider-uci[{','.join(EXTRAS)}]"]


def test_the_missing_extra_names_what_needs_it() -> None:
    error = MissingExtra(["postgres"], "a PostgreSQL warehouse")
    assert isinstance(error, ImportError) and error.extras == ("postgres",)
    assert str(error) == "a PostgreSQL warehouse needs the postgres extra: " + INSTALL.format("postgres")
    assert extra_for(ModuleNotFoundError(name="matplotlib.pyplot")) == "analytics"
    assert extra_for(ModuleNotFoundError(name="airflow.providers.openlineage.extractors")) == "openlineage"
    assert extra_for(ModuleNotFoundError(name="matplotlibx")) is None
