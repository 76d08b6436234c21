"""An Airflow UI plugin: the latest conversation report pages inside Airflow, behind Airflow's own login.

The pages are a FastAPI app (``ui_pages``) mounted in the api-server at ``/uci-reports``; an external
view adds "Conversation reports" to Airflow's menu, which shows their index inside the UI.

Airflow loads every plugin wherever it parses a DAG or runs a task, where no page is served: the app
is built only when the api-server asks for it (:attr:`UciReportsPlugin.fastapi_apps`), so that
parsing and tasks do not import FastAPI for it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/uci-reports"


class UciReportsPlugin(AirflowPlugin):
    """The conversation reports in Airflow's UI: a menu entry and the pages, behind Airflow's login."""

    name = "uci_exhaust_reports"
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Conversation reports",
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "uci-reports",
            "destination": "nav",
            "category": "browse",
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The pages' app, imported when the api-server mounts it."""
        from airflow_provider_uci.ui_pages import app

        return [{"app": app, "url_prefix": URL_PREFIX, "name": "UCI conversation reports"}]
