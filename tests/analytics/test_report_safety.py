"""No bot name, question title or answer breaks a report page or adds anything to it.

Random unicode (with ``$``, ``\\``, ``<``, ``{``, control characters and very long text weighted in) goes
into a warehouse as bots' names, titles and answers; the report must write, and its page must hold only
the elements and attributes the report itself makes, with the text kept as text.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from airflow_provider_uci.analytics.charts import plain
from airflow_provider_uci.analytics.report import write_report
from airflow_provider_uci.exhaust.warehouse import open_warehouse
from tests.support.batches import response_batches, user_table

TABLE = "uci_responses"
BOTS = ("6f1c8a52-3d4e-4b7a-9c2d-1e5f7a9b0c11", "6f1c8a52-3d4e-4b7a-9c2d-1e5f7a9b0c12")
#: Elements the report makes: its HTML, and matplotlib's SVG.
HTML_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "main",
    "h1",
    "h2",
    "h3",
    "p",
    "div",
    "b",
    "span",
    "figure",
    "figcaption",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "a",
    "br",
    "ul",
    "li",
}
SVG_TAGS = {
    "svg",
    "g",
    "path",
    "text",
    "defs",
    "clippath",
    "rect",
    "use",
    "metadata",
    "rdf:rdf",
    "cc:work",
    "dc:type",
    "dc:date",
    "dc:format",
    "dc:creator",
    "cc:agent",
    "dc:title",
    "title",
    "desc",
    "polyline",
    "line",
    "circle",
    "tspan",
}
ATTRIBUTES = {
    "charset",
    "http-equiv",
    "content",
    "name",
    "lang",
    "class",
    "id",
    "href",
    "download",
    "style",
    "aria-label",
    "role",
    "viewbox",
    "xmlns",
    "xmlns:xlink",
    "version",
    "d",
    "transform",
    "x",
    "y",
    "clip-path",
    "xlink:href",
    "width",
    "height",
    "rdf:resource",
    "xmlns:dc",
    "xmlns:cc",
    "xmlns:rdf",
    "xmlns:svg",
    "fill",
    "stroke",
    "stroke-width",
    "stroke-linecap",
    "stroke-linejoin",
    "points",
    "opacity",
    "font-size",
    "font-family",
    "font-weight",
    "text-anchor",
    "dominant-baseline",
    "x1",
    "x2",
    "y1",
    "y2",
    "cx",
    "cy",
    "r",
    "stroke-dasharray",
    "stroke-dashoffset",
    "stroke-opacity",
    "fill-opacity",
    "rx",
    "ry",
    "type",
}


class Elements(HTMLParser):
    """Every start tag and attribute of a page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def answer(
    number: int, bot: str, name: str, question: str, title: str, kind: str, response: str | None, eof: bool
) -> tuple[Any, ...]:
    stamp = f"2026-01-10T05:{number // 60 % 60:02d}:{number % 60:02d}.000Z"
    return (
        bot,
        f"m{number}",
        f"device-{number % 3}",
        question,
        name,
        f"s{number % 4}",
        kind,
        title,
        "",
        7,
        1,
        1,
        "[]",
        response,
        None,
        eof,
        stamp,
        stamp,
        None,
        None,
    )


def write(rows: list[tuple[Any, ...]], folder: Path, conversation_id: str | None = None) -> str:
    url = f"sqlite:///{folder / 'warehouse.db'}"
    for bot in BOTS:
        mine = [row for row in rows if row[0] == bot]
        with open_warehouse(url) as warehouse:
            warehouse.load(
                table=TABLE,
                conversation_id=bot,
                from_date="2026-01-10",
                to_date="2026-01-10",
                responses=response_batches(mine),
                users=user_table([]),
                audit={},
            )
    page = write_report(url, folder / "report.html", table=TABLE, conversation_id=conversation_id)
    return page.read_text(encoding="utf-8")


def check_page(page: str, texts: list[str]) -> None:
    """Only the report's own elements and attributes; links inside the page or to its CSVs; text as text."""
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", page), "no control character in the page"
    parser = Elements()
    parser.feed(page)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in HTML_TAGS | SVG_TAGS, f"an element the report does not make: <{tag}>"
        for name, value in attrs:
            assert name in ATTRIBUTES, f"an attribute the report does not set: {name}={value!r} on <{tag}>"
            if name == "href":
                assert value is not None and (value.startswith("#") or value.startswith("data:text/csv;")), (
                    value
                )
            if name == "style" and tag in HTML_TAGS:
                assert re.fullmatch(r"(width:\d+%|background:#[0-9a-f]{6})", value or ""), value
            if name in ("style", "clip-path"):
                assert not re.search(r"url\(\s*[^#\s]", value or "") and "expression" not in (value or ""), (
                    value
                )
    assert [tag for tag, _ in parser.tags].count("meta") == 3 and "<script" not in page.lower()
    shown = html.unescape(page)
    for text in texts:
        flat = plain(text, 40)[:-1] if len(plain(text)) > 40 else plain(text)
        assert flat.strip() == "" or flat in shown, f"{text!r} is shown (as plain text)"


NASTY = st.sampled_from(
    [
        "$",
        "\\",
        "<",
        ">",
        "{",
        "}",
        "&",
        '"',
        "'",
        "$\\frac$",
        "<script>alert(1)</script>",
        "</svg><img src=x onerror=alert(1)>",
        "\x00",
        "\x1b[31m",
        "\u202e",
        "_",
        "%",
        "\n",
        "=1+1",
        "javascript:",
        "{{7*7}}",
        "\r\n",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=12), NASTY), min_size=1, max_size=6).map("".join)


# each example writes two reports (a second or two): no shrinking, the failing example is printed as found
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    names=st.tuples(TEXT, TEXT),
    titles=st.lists(TEXT, min_size=2, max_size=2),
    answers=st.lists(TEXT, min_size=1, max_size=8),
)
def test_random_unicode_names_titles_and_answers_write_a_page_with_nothing_injected(
    names: tuple[str, str], titles: list[str], answers: list[str]
) -> None:
    rows = []
    for number in range(16):
        bot = BOTS[number % 2]
        question = number % 4 // 2
        rows.append(
            answer(
                number,
                bot,
                names[number % 2],
                f"q{question}",
                titles[question],
                "mcq" if question == 0 else "ftp",
                json.dumps([{"ans1": answers[number % len(answers)]}]),
                question == 1,
            )
        )
    with tempfile.TemporaryDirectory() as folder:
        check_page(write(rows, Path(folder)), [*names, *titles])
        check_page(write(rows, Path(folder), BOTS[0]), [names[0]])


def test_a_dollar_named_bot_and_a_math_answer_are_drawn_as_written(tmp_path: Path) -> None:
    name = "Pay $5 or $10 survey"
    rows = [
        answer(
            number,
            BOTS[0],
            name,
            "q1",
            "Pick $x$ or \\alpha",
            "mcq",
            json.dumps([{"1": {"text": "$\\frac$" if number % 2 else "$5"}}]),
            True,
        )
        for number in range(6)
    ]
    rows.append(answer(7, BOTS[1], "Other bot", "q1", "Hi", "mcq", '[{"ans1":"ok"}]', True))
    page = write(rows, tmp_path)
    check_page(page, [name, "$\\frac$"])
    assert re.search(r"<text[^>]*>Pay \$5 or \$10 survey<", page), "the bot's name is drawn with its dollars"
    assert "$\\frac$</b>" in page and "Pick $x$ or \\alpha" in page
    bot_page = write(rows, tmp_path, BOTS[0])
    assert "<h1>Pay $5 or $10 survey: conversation report</h1>" in bot_page


def test_thousands_of_distinct_answers_make_ten_rows_and_other(tmp_path: Path) -> None:
    rows = [
        answer(
            number,
            BOTS[0],
            "Many answers",
            "q1",
            "Type anything",
            "mcq",
            json.dumps([{"ans1": f"answer {number}"}]),
            True,
        )
        for number in range(2000)
    ]
    for number, row in enumerate(rows):  # a session each
        rows[number] = (*row[:5], f"session-{number}", *row[6:])
    page = write(rows, tmp_path, BOTS[0])
    assert page.count('<div class="bar">') == 11 and "other (1,990 values)" in page
    assert "2,000 distinct answers" in page
