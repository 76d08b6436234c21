"""``uci-exhaust report``: one offline page of charts, the same numbers from SQLite and PostgreSQL, drawn by
a real browser (headless Chromium) on a desktop and a phone width."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_uci.analytics.report import WITHHELD, answer_label, collect
from airflow_provider_uci.exhaust.load import load_exhaust
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from airflow_provider_uci.exhaust.warehouse.views import Scope
from tests.support.services import postgres_database, unavailable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sunbird"
SCRIPT = Path(sys.executable).with_name("uci-exhaust")
MENTOR_BOT = "1ffc932f-1220-458d-9d9a-a5a377a42139"
DST_BOT = "c5629c27-7416-453c-b79e-43d781cc7d36"
HINDI_TITLE = "कृपया मेंटर का नाम लिखे"
LOADS = [
    (FIXTURES / "response-exhaust-2022-04-sample.csv", None),
    (FIXTURES / "response-exhaust-2022-06-sample.csv", FIXTURES / "private-exhaust-2022-06-sample.csv"),
    (FIXTURES / "response-exhaust-2022-06-24-mentor-feedback.csv", None),
]


def load_fixtures(url: str) -> str:
    for response, private in LOADS:
        load_exhaust(response_csv=response, private=private, warehouse_url=url)
    return url


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return load_fixtures(f"sqlite:///{tmp_path_factory.mktemp('report') / 'warehouse.db'}")


def report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "report", *args], capture_output=True, text=True, timeout=300)


def screenshot(page: Path, width: int, height: int) -> Path:
    """The page as headless Chromium draws it at ``width`` x ``height`` pixels."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        unavailable("no headless Chromium on this machine")
    out = page.with_suffix(f".{width}.png")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return out


def pixels(png: Path) -> tuple[float, int]:
    """The fraction of pixels that are not white, and how many are the funnel's bar colour."""
    import numpy as np
    from PIL import Image

    data = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16).reshape(-1, 3)
    ink = int(np.count_nonzero((data < 235).any(axis=1)))
    bars = int(np.count_nonzero((np.abs(data - np.array([0x1B, 0x6C, 0xA8])) < 12).all(axis=1)))
    return ink / len(data), bars


def test_the_fleet_page_works_offline_on_a_desktop_and_a_phone(sqlite_url: str, tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    done = report("--warehouse", sqlite_url, "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(page)
    text = page.read_text(encoding="utf-8")
    # daily devices and completion for the fleet; per bot: daily devices, funnel, a chart per choice question
    assert text.count("<svg") >= 2 + 3 * 2
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert '<meta charset="utf-8">' in text and "@media (max-width:600px)" in text
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text), (
        "nothing fetched from a network"
    )
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        assert "viewBox" in svg and not re.match(r'<svg[^>]* width="', svg), "each chart sizes to its column"
    assert re.search(r"<text[^>]*>[^<]*" + re.escape(HINDI_TITLE[:10]), text), "Hindi kept as text in the SVG"
    assert f"<td>{HINDI_TITLE}</td>" in text or f"{HINDI_TITLE}</td>" in text
    for width, height in ((1200, 2200), (390, 2400)):
        ink, bars = pixels(screenshot(page, width, height))
        assert 0.03 < ink < 0.9, f"{width} px wide: {ink:.1%} of the page is not white"
        assert bars > 500, f"{width} px wide: the funnel's bars are drawn ({bars} pixels)"


def test_one_bot_over_a_range_of_days(sqlite_url: str, tmp_path: Path) -> None:
    page = tmp_path / "dst.html"
    done = report(
        "--warehouse",
        sqlite_url,
        "--conversation-id",
        DST_BOT,
        "--from-date",
        "2022-03-01",
        "--to-date",
        "2022-03-09",
        "--out",
        str(page),
    )
    assert done.returncode == 0, done.stderr
    text = page.read_text(encoding="utf-8")
    assert "DST Form Bot: conversation report" in text
    assert "<b>8</b>answers" in text, "only the answers synced up to 2022-03-09"
    assert "<b>13</b>answers" not in text and "Global Tara Bot" not in text
    assert "Free-text answers" in text and "Record your location." in text


def test_answer_labels_of_the_exhaust_forms() -> None:
    assert answer_label('[{"1":{"text":"1 Yes"}}]') == "1 Yes"
    assert answer_label('[{"ans1":"2 Comic books"}]') == "2 Comic books"
    assert answer_label("") == WITHHELD
    assert answer_label(None) == "(none)"


def test_bad_input_exits_2_naming_the_field(sqlite_url: str, tmp_path: Path) -> None:
    done = report("--warehouse", sqlite_url, "--table", "other_table", "--out", str(tmp_path / "x.html"))
    assert done.returncode == 2 and "table: the warehouse holds no table 'other_table'" in done.stderr
    done = report("--warehouse", sqlite_url, "--from-date", "2022-02-30", "--out", str(tmp_path / "x.html"))
    assert done.returncode == 2 and "from_date: expected a date as YYYY-MM-DD" in done.stderr
    assert not (tmp_path / "x.html").exists()
    missing = tmp_path / "no-such.db"
    done = report("--warehouse", f"sqlite:///{missing}", "--out", str(tmp_path / "x.html"))
    assert done.returncode == 2 and f"warehouse: no SQLite database at '{missing}'" in done.stderr
    assert not missing.exists() and not (tmp_path / "x.html").exists(), (
        "no empty database made, no page written"
    )


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield load_fixtures(url)


@pytest.mark.parametrize(
    "scope",
    [Scope(), Scope(MENTOR_BOT), Scope(DST_BOT, "2022-03-10", None)],
    ids=["fleet", "one bot", "a range"],
)
def test_sqlite_and_postgres_give_the_same_numbers(sqlite_url: str, postgres_url: str, scope: Scope) -> None:
    with open_warehouse(sqlite_url) as lite, open_warehouse(postgres_url) as postgres:
        from_sqlite, from_postgres = (
            collect(lite, "uci_responses", scope),
            collect(postgres, "uci_responses", scope),
        )
    assert from_sqlite == from_postgres
    assert from_sqlite and all(bot.questions and bot.daily for bot in from_sqlite)
    if scope.from_date:
        assert [bot.answers for bot in from_sqlite] == [5]
