"""The UI plugin's pages: the latest conversation report pages inside Airflow, behind Airflow's own login.

A FastAPI app that the plugin (``ui_plugin``) mounts in the api-server at ``/uci-reports`` (no new
port) serves the pages the ``uci_exhaust_report`` DAG wrote to a local destination (the Variable
``uci_exhaust_destination``, else ``$AIRFLOW_HOME/uci-exhaust/files``): an index of the bots, the
fleet's page, and a page per bot. Only the api-server imports this module.

Every route needs an authenticated Airflow user (``requires_authenticated``: the UI's session cookie or
a bearer token); the pages hold answers, so they are sent with ``Cache-Control: no-store``. A bot's id
must be a UUID before it is made a path. Pages on Azure Blob Storage (``wasb://``) are not served here.
"""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from airflow_provider_uci.analytics.page import CSP

REPORT_NAME = "report.html"
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": f"{CSP}; frame-ancestors 'self'",
}


def _authenticated() -> list[object]:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return [Depends(requires_authenticated())]


def report_folder() -> Path | None:
    """The local folder the report DAG writes to; ``None`` for a blob destination."""
    from airflow.sdk import Variable

    from airflow_provider_uci.operators.load import default_data_root

    value = str(Variable.get("uci_exhaust_destination", default="") or "")
    if value.startswith("wasb://"):
        return None
    return Path(value) if value else default_data_root() / "files"


def _page(path: Path) -> HTMLResponse:
    if not path.is_file():
        raise HTTPException(
            status_code=404,
            detail="No report page here yet: the uci_exhaust_report DAG writes it after a load",
        )
    return HTMLResponse(path.read_text(encoding="utf-8"), headers=_HEADERS)


def _title(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        found = _TITLE.search(handle.read(4096))
    return html.unescape(found.group(1)) if found else path.parent.name


app = FastAPI(
    title="UCI conversation reports",
    dependencies=_authenticated(),
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@app.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The reports there are: the fleet's page, then each bot's, by name."""
    folder = report_folder()
    if folder is None:
        body = (
            "<p>The reports are written to Azure Blob Storage (uci_exhaust_destination); open them there.</p>"
        )
    else:
        bots = sorted(
            (
                (_title(page).removesuffix(": conversation report"), page.parent.name)
                for page in folder.glob(f"*/{REPORT_NAME}")
                if _is_bot(page.parent.name)
            ),
            key=lambda item: item[0].casefold(),
        )
        links = ['<li><a href="fleet">All bots</a></li>'] if (folder / REPORT_NAME).is_file() else []
        links += [
            f'<li><a href="bots/{html.escape(bot)}">{html.escape(name)}</a> '
            f'<span class="muted">{html.escape(bot)}</span></li>'
            for name, bot in bots
        ]
        body = (
            f"<ul>{''.join(links)}</ul>"
            if links
            else "<p>No report yet: the uci_exhaust_report DAG writes the pages after the first load (unpause it "
            "if new DAGs start paused).</p>"
        )
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1"><title>Conversation reports</title><style>'
        "body{font-family:system-ui,sans-serif;margin:16px;color:#1d2430}li{margin:.4em 0}"
        ".muted{color:#5b6675;font-size:.85rem}</style></head><body><h1>Conversation reports</h1>"
        f"{body}</body></html>",
        headers=_HEADERS,
    )


@app.get("/fleet", response_class=HTMLResponse)
def fleet() -> HTMLResponse:
    """The fleet's latest page."""
    folder = report_folder()
    if folder is None:
        raise HTTPException(status_code=404, detail="The reports are on Azure Blob Storage")
    return _page(folder / REPORT_NAME)


def _is_bot(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@app.get("/bots/{conversation_id}", response_class=HTMLResponse)
def bot(conversation_id: str) -> HTMLResponse:
    """One bot's latest page."""
    if not _is_bot(conversation_id):
        raise HTTPException(status_code=404, detail="conversation_id: must be a bot's UUID")
    folder = report_folder()
    if folder is None:
        raise HTTPException(status_code=404, detail="The reports are on Azure Blob Storage")
    return _page(folder / conversation_id / REPORT_NAME)
