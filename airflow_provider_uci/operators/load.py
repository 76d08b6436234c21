"""LoadExhaustOperator: join one bot's copied exhausts and load them into the warehouse."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, BaseHook, BaseOperator, Context

from airflow_provider_uci.exhaust.load import DEFAULT_TABLE, load_exhaust
from airflow_provider_uci.exhaust.warehouse import warehouse_url_from_parts
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.xcom import pull_from


def default_data_root() -> Path:
    """Where the embedded defaults keep copied files and the SQLite warehouse."""
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "uci-exhaust"


def warehouse_asset(table: str = DEFAULT_TABLE) -> Asset:
    """The Asset a load of ``table`` updates."""
    return Asset(name=f"uci_exhaust_{table}", uri=f"uci-warehouse://{table}")


class LoadExhaustOperator(BaseOperator):
    """Load one bot's response exhaust, joined to its private exhaust, into the warehouse.

    The files come from the copy tasks' XCom (``response_copy_task_id``, ``private_copy_task_id``:
    within a mapped task group the same map index is read) or are given as paths. Everything lands
    in one transaction per bot and range, which replaces the bot's rows of each IST sync day of the
    range (the day the service files an answer under), so reruns and overlapping ranges neither
    duplicate nor lose a row; users are upserted on (conversation, Device UUID).

    :param warehouse_conn_id: an Airflow connection of type ``postgres`` or ``sqlite``; without one,
        a SQLite file under ``$AIRFLOW_HOME/uci-exhaust/warehouse.db``.
    :param table: the responses table (``<table>_users`` and ``<table>_loads`` sit beside it).
    :param phone_numbers: ``plain``, ``hashed`` (SHA-256) or ``none``.
    :param max_rejects: unreadable records to bear before the load fails (default 0).
    """

    template_fields: Sequence[str] = ("response_path", "private_path", "conversation_id", "from_date", "to_date",
                                      "warehouse_conn_id", "phone_numbers")

    def __init__(self, *, response_copy_task_id: str | None = None, private_copy_task_id: str | None = None,
                 response_path: str | None = None, private_path: str | None = None,
                 conversation_id: str | None = None, from_date: str | None = None, to_date: str | None = None,
                 warehouse_conn_id: str | None = None, table: str = DEFAULT_TABLE, phone_numbers: str = "plain",
                 max_rejects: int = 0, uci_exhaust_conn_id: str = DEFAULT_CONN_ID, wasb_conn_id: str = "wasb_default",
                 **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [warehouse_asset(table)])
        super().__init__(**kwargs)
        if not (response_copy_task_id or response_path) or not (private_copy_task_id or private_path):
            raise ValueError("LoadExhaustOperator: give response_copy_task_id or response_path, and "
                             "private_copy_task_id or private_path")
        self.response_copy_task_id = response_copy_task_id
        self.private_copy_task_id = private_copy_task_id
        self.response_path = response_path
        self.private_path = private_path
        self.conversation_id = conversation_id
        self.from_date = from_date
        self.to_date = to_date
        self.warehouse_conn_id = warehouse_conn_id
        self.table = table
        self.phone_numbers = phone_numbers
        self.max_rejects = max_rejects
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.wasb_conn_id = wasb_conn_id

    def _copied(self, context: Context, task_id: str | None, given: str | None) -> tuple[str, dict[str, Any]]:
        if given:
            return given, {}
        pushed = pull_from(context, str(task_id))
        if not isinstance(pushed, dict) or not pushed.get("csv"):
            raise ValueError(f"task {task_id!r} pushed no copied exhaust file to XCom")
        return pushed["csv"], pushed

    def _warehouse_url(self) -> str:
        if not self.warehouse_conn_id:
            root = default_data_root()
            root.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{root / 'warehouse.db'}"
        conn = BaseHook.get_connection(self.warehouse_conn_id)
        return warehouse_url_from_parts(conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port)

    def _local(self, location: str, scratch: Path) -> Path:
        """A local path for ``location``; Azure blobs (``wasb://container/key``) are streamed down first."""
        if location.startswith("wasb://"):
            from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

            container, _, key = location[len("wasb://"):].partition("/")
            target = scratch / Path(key).name
            client = WasbHook(wasb_conn_id=self.wasb_conn_id).get_conn().get_blob_client(container, key)
            with target.open("wb") as handle:  # ranges of 4 MiB, four at a time
                client.download_blob(max_concurrency=4).readinto(handle)
            return target
        return Path(location.removeprefix("file://"))

    def execute(self, context: Context) -> dict[str, Any]:
        response_location, response_meta = self._copied(context, self.response_copy_task_id, self.response_path)
        private_location, private_meta = self._copied(context, self.private_copy_task_id, self.private_path)
        conversation = self.conversation_id or response_meta.get("conversation_id")
        from_date = self.from_date or response_meta.get("start_date")
        to_date = self.to_date or response_meta.get("end_date")
        key = None
        if self.uci_exhaust_conn_id:
            from airflow_provider_uci.hooks.exhaust import UciExhaustHook

            try:
                key = UciExhaustHook(self.uci_exhaust_conn_id).settings.encryption_key
            except Exception:  # noqa: BLE001 - a plain CSV needs no key
                key = None
        reject_dir = default_data_root() / "rejects"
        reject_path = reject_dir / f"{self.dag_id}.{context['run_id']}.{conversation}.jsonl".replace(":", "_")
        with tempfile.TemporaryDirectory(prefix="uci-load-") as scratch:
            summary = load_exhaust(
                response_csv=self._local(response_location, Path(scratch)),
                private=self._local(private_location, Path(scratch)), warehouse_url=self._warehouse_url(),
                table=self.table, encryption_key=key, conversation_id=conversation, from_date=from_date,
                to_date=to_date, phone_numbers=self.phone_numbers, max_rejects=self.max_rejects,
                reject_path=reject_path,
                audit={"response_request_id": response_meta.get("request_id"),
                       "private_request_id": private_meta.get("request_id")},
            )
        self.log.info("Loaded %d responses (%d without a user row, %d earlier rows replaced) and %d users of %s "
                      "(%s..%s) into %s, read %s; %d rejected", summary.responses_loaded,
                      summary.responses_without_user, summary.responses_replaced, summary.users_loaded,
                      summary.conversation_id, from_date, to_date, summary.table,
                      "with pyarrow" if summary.reader == "arrow" else "record by record", summary.rejected)
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            outlet_events[warehouse_asset(self.table)].extra = {
                "conversation_id": summary.conversation_id, "from_date": from_date, "to_date": to_date,
                "rows": summary.responses_loaded, "users": summary.users_loaded,
            }
        return summary.as_dict()
