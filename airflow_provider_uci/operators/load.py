"""LoadExhaustOperator: join one bot's copied exhausts and load them into the warehouse."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseHook, BaseOperator, Context

from airflow_provider_uci import lineage
from airflow_provider_uci.botlog import bot_log, naming_bot
from airflow_provider_uci.exhaust.at_rest import scratch_folder
from airflow_provider_uci.exhaust.names import conversation_id as checked_conversation_id
from airflow_provider_uci.exhaust.safe_files import create_private
from airflow_provider_uci.exhaust.spark_csv import read_records
from airflow_provider_uci.hooks.wire import DEFAULT_CONN_ID
from airflow_provider_uci.models import Dataset, ExhaustFatalError
from airflow_provider_uci.refs import copies_by_dataset

if TYPE_CHECKING:
    from airflow_provider_uci.exhaust.load import LoadSummary

RESPONSE, PRIVATE = Dataset.RESPONSE.value, Dataset.PRIVATE.value
#: The default responses table (the loader's own default, restated here so that parsing a DAG that uses
#: this operator does not import the loader, pyarrow and numpy: every task process of the DAG parses it).
DEFAULT_TABLE = "uci_responses"
#: The Airflow Variable that holds the secret ``hashed`` phone numbers are keyed with (``exhaust.phone_hash``).
PHONE_HASH_VARIABLE = "uci_exhaust_phone_hash_secret"


def default_data_root() -> Path:
    """Where the embedded defaults keep copied files and the SQLite warehouse."""
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "uci-exhaust"


def warehouse_asset(table: str = DEFAULT_TABLE) -> Asset:
    """The Asset a load of ``table`` updates."""
    return Asset(name=f"uci_exhaust_{table}", uri=f"uci-warehouse://{table}")


def bot_name(path: Path | None) -> str | None:
    """The ``Conversation Name`` of the first record of an exhaust CSV, if it has one."""
    if path is None or not path.is_file() or path.suffix.lower() != ".csv":
        return None
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            records = read_records(handle)
            _, header = next(records)
            _, first = next(records)
    except (StopIteration, ValueError, OSError):
        return None
    column = {name: index for index, name in enumerate(header)}.get("Conversation Name")
    return first[column] if column is not None and column < len(first) and first[column] else None


def arrow_without_pandas() -> None:
    """Let pyarrow start in this task process without pandas.

    pyarrow looks for pandas the first time it converts a Python value (any ``pa.array`` or scalar),
    and importing pandas costs about a third of a CPU-second: more than loading a bot's day of answers,
    in every load task of a fleet. A load never hands pyarrow's data to pandas, so while pyarrow looks,
    ``import pandas`` fails, and pyarrow goes on without its pandas integration in this process. Where
    pandas is already imported, nothing changes; afterwards pandas imports as ever.
    """
    import sys

    if "pandas" in sys.modules:
        return

    class NoPandas:
        @staticmethod
        def find_spec(name: str, path: Any = None, target: Any = None) -> None:
            if name == "pandas":
                raise ModuleNotFoundError(
                    "pandas is not imported while pyarrow starts in a load task", name=name
                )

    finder = NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        import pyarrow as pa

        pa.array(["x"])  # pyarrow looks for pandas now (in Python and in C++), once for the process
        pa.scalar(1)
    finally:
        sys.meta_path.remove(finder)


class LoadExhaustOperator(BaseOperator):
    """Join one bot's copied exhausts and load them into the warehouse, idempotently.

    The files come from a copy's output (``copies=copy.output``: ``{dataset: copied}``). Everything
    lands in one transaction per bot and range, which replaces the bot's rows of each IST sync day of
    the range (the day the service files an answer under), so reruns and overlapping ranges neither
    duplicate nor lose a row; users are upserted on (conversation, Device UUID). The load reads only the
    copies: clearing it reloads them with no call to the service.

    A dataset the service found empty (``No data found``: the copy's ``"empty": True``) loads as
    nothing: with no answers, the bot's rows of those days are replaced by none and the load is
    recorded with 0 responses; with no users, the answers load without a user joined. Files that
    break the exhaust format fail the task at once, without Airflow's retries.

    :param copies: ``{dataset: copied}``; a dataset left out loads as empty. Templated.
    :param conversation_id: the bot, for log lines and the task's label (map index); by default the
        copies' own. Templated.
    :param from_date: first sync day of the range the load replaces; by default the copies'. Templated.
    :param to_date: last sync day, inclusive; by default the copies'. Templated.
    :param warehouse_conn_id: an Airflow connection of type ``postgres`` or ``sqlite``; without one,
        a SQLite file under ``$AIRFLOW_HOME/uci-exhaust/warehouse.db``. Templated.
    :param table: the responses table (``<table>_users`` and ``<table>_loads`` sit beside it).
    :param phone_numbers: ``plain``, ``hashed`` (HMAC-SHA256 keyed with the Variable
        ``uci_exhaust_phone_hash_secret`` or the warehouse connection's extra ``phone_hash_secret``) or ``none``.
        Templated.
    :param max_rejects: unreadable records to bear before the load fails (default 0).
    :param uci_exhaust_conn_id: the Data Exhaust connection, read only for the zip password when a copy
        left the private exhaust zipped.
    :param wasb_conn_id: the Azure Blob connection, for copies on ``wasb://``.
    """

    template_fields: Sequence[str] = (
        "copies",
        "conversation_id",
        "from_date",
        "to_date",
        "warehouse_conn_id",
        "phone_numbers",
    )
    ui_color = "#e4ecd9"

    def __init__(
        self,
        *,
        copies: Any,
        conversation_id: str | None = None,
        from_date: str | None = None,
        to_date: str | None = None,
        warehouse_conn_id: str | None = None,
        table: str = DEFAULT_TABLE,
        phone_numbers: str = "plain",
        max_rejects: int = 0,
        uci_exhaust_conn_id: str = DEFAULT_CONN_ID,
        wasb_conn_id: str = "wasb_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [warehouse_asset(table)])
        super().__init__(**kwargs)
        self.copies = copies
        self.conversation_id = conversation_id
        self.from_date = from_date
        self.to_date = to_date
        self.warehouse_conn_id = warehouse_conn_id
        self.table = table
        self.phone_numbers = phone_numbers
        self.max_rejects = max_rejects
        self.uci_exhaust_conn_id = uci_exhaust_conn_id
        self.wasb_conn_id = wasb_conn_id

    @cached_property
    def loader(self) -> ExhaustLoader:
        """The part that loads, with this task's rendered options."""
        options = LoadOptions.of_task(
            self, self.conversation_id or None, self.from_date or None, self.to_date or None
        )
        return ExhaustLoader(options, bot_log(self.log, options.conversation_id))

    def execute(self, context: Context) -> dict[str, Any]:
        return self.loader.load(context, copies_by_dataset(self.copies))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the copied files in, the warehouse table (with its columns) out."""
        loader = self.__dict__.get("loader")
        return loader.lineage() if loader is not None else lineage.operator_lineage([], [])


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """Where and how to load a bot's copies (rendered values; see :class:`LoadExhaustOperator`)."""

    conversation_id: str | None = None
    from_date: str | None = None
    to_date: str | None = None
    warehouse_conn_id: str | None = None
    table: str = DEFAULT_TABLE
    phone_numbers: str = "plain"
    max_rejects: int = 0
    uci_exhaust_conn_id: str | None = DEFAULT_CONN_ID
    wasb_conn_id: str = "wasb_default"
    dag_id: str = ""

    @classmethod
    def of_task(
        cls, task: Any, conversation_id: str | None, from_date: str | None, to_date: str | None
    ) -> LoadOptions:
        """The options of ``task``, an operator with the load's parameters (rendered), for this bot and range."""
        same = ("table", "phone_numbers", "max_rejects", "uci_exhaust_conn_id", "wasb_conn_id", "dag_id")
        given = {name: getattr(task, name) for name in same}
        given["warehouse_conn_id"] = task.warehouse_conn_id or None
        return cls(conversation_id=conversation_id, from_date=from_date, to_date=to_date, **given)


@dataclass
class ExhaustLoader:
    """Joins one bot's copied exhausts and loads them: the part the load and one-task operators build.

    :param options: where and how.
    :param log: the task's logger, naming the bot.
    """

    options: LoadOptions
    log: Any
    _read: list[tuple[str, str]] = field(default_factory=list, init=False)
    _table: tuple[str, str] | None = field(default=None, init=False)

    def _warehouse_url(self) -> str:
        if not self.options.warehouse_conn_id:
            root = default_data_root()
            root.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{root / 'warehouse.db'}"
        from airflow_provider_uci.exhaust.warehouse import warehouse_url_from_parts

        conn = BaseHook.get_connection(self.options.warehouse_conn_id)
        return warehouse_url_from_parts(
            conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port
        )

    def _phone_hash_secret(self) -> str | None:
        """The secret ``hashed`` phones are keyed with: the Variable :data:`PHONE_HASH_VARIABLE`, else the
        warehouse connection's extra ``phone_hash_secret`` (both names Airflow's masker hides); read only for
        ``hashed``. ``None`` when neither is set: the load then refuses ``hashed``, saying where to set it."""
        if self.options.phone_numbers != "hashed":
            return None
        from airflow.sdk import Variable
        from airflow.sdk.log import mask_secret

        secret = Variable.get(PHONE_HASH_VARIABLE, default=None)
        if not secret and self.options.warehouse_conn_id:
            secret = BaseHook.get_connection(self.options.warehouse_conn_id).extra_dejson.get(
                "phone_hash_secret"
            )
        if secret:
            mask_secret(secret)
        return secret or None

    def _local(self, copied: Mapping[str, Any], scratch: Path) -> Path | None:
        """A local path for a copy's CSV; Azure blobs (``wasb://container/key``) are streamed down first."""
        location = copied.get("csv")
        if not location or copied.get("empty"):
            return None
        if location.startswith("wasb://"):
            from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

            container, _, key = location[len("wasb://") :].partition("/")
            name = Path(key).name
            suffix = ".zip" if name.lower().endswith(".zip") else ".csv"  # the loader tells the files by it
            dataset = copied.get("dataset") if copied.get("dataset") in (RESPONSE, PRIVATE) else "exhaust"
            target = scratch / f"{dataset}-{len(list(scratch.iterdir()))}{suffix}"  # no name the blob chose
            client = (
                WasbHook(wasb_conn_id=self.options.wasb_conn_id).get_conn().get_blob_client(container, key)
            )
            with create_private(target, field="blob") as handle:  # ranges of 4 MiB, four at a time
                client.download_blob(max_concurrency=4).readinto(handle)
            return target
        path = Path(location.removeprefix("file://"))
        if not path.is_file():
            where = f" on {copied['host']}" if copied.get("host") else ""
            raise ExhaustFatalError(
                f"{path.name} is not on this worker ({socket.gethostname()}); the copy wrote it to a local "
                f"folder{where}. With workers on several machines (CeleryExecutor, KubernetesExecutor), the "
                "destination must be storage every worker can reach: set uci_exhaust_destination to "
                "wasb://<container>/<prefix>"
            )
        return path

    def _zip_password(self, private: Path | None) -> str | None:
        """The zip's password, read from the connection only for a private exhaust still zipped."""
        if private is None or private.suffix.lower() != ".zip" or not self.options.uci_exhaust_conn_id:
            return None
        from airflow_provider_uci.hooks.exhaust import UciExhaustHook

        return UciExhaustHook(self.options.uci_exhaust_conn_id).settings.encryption_key

    def load(self, context: Context, copies: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Load the copied response exhaust joined to the private one (``{dataset: copied}``; a dataset
        left out, or ``empty``, loads as nothing). Returns the load's summary."""
        arrow_without_pandas()
        from airflow_provider_uci.exhaust.load import load_exhaust

        opts = self.options
        response_meta, private_meta = copies.get(RESPONSE, {}), copies.get(PRIVATE, {})
        conversation, from_date, to_date = self._bot_and_range(response_meta, private_meta)
        secret = self._phone_hash_secret()
        reject_dir = default_data_root() / "rejects"
        reject_path = reject_dir / f"{opts.dag_id}.{context['run_id']}.{conversation}.jsonl".replace(":", "_")
        with scratch_folder("uci-load-") as scratch:  # swept by the next run if this one is killed
            response = self._local(response_meta, Path(scratch))
            private = self._local(private_meta, Path(scratch))
            name = bot_name(response) or bot_name(private)
            with naming_bot(conversation):
                try:
                    summary = load_exhaust(
                        response_csv=response,
                        private=private,
                        warehouse_url=self._warehouse_url(),
                        table=opts.table,
                        encryption_key=self._zip_password(private),
                        conversation_id=conversation,
                        from_date=from_date,
                        to_date=to_date,
                        phone_numbers=opts.phone_numbers,
                        max_rejects=opts.max_rejects,
                        reject_path=reject_path,
                        audit={
                            "response_request_id": response_meta.get("request_id"),
                            "private_request_id": private_meta.get("request_id"),
                        },
                        fast=None,
                        phone_hash_secret=secret,
                    )
                # the files break the format or a rule: a retry reads the same files
                except ValueError as exc:
                    raise ExhaustFatalError(f"bot {conversation}, {from_date}..{to_date}: {exc}") from None
        self._log_load(summary, name, response is None, private is None)
        self._record_lineage(context, summary, response_meta, private_meta)
        return summary.as_dict()

    def _bot_and_range(
        self, response_meta: Mapping[str, Any], private_meta: Mapping[str, Any]
    ) -> tuple[str | None, str | None, str | None]:
        """The bot and the range of days to load: the operator's own, else the copied files'."""
        opts = self.options
        conversation = (
            opts.conversation_id
            or response_meta.get("conversation_id")
            or private_meta.get("conversation_id")
        )
        from_date = opts.from_date or response_meta.get("start_date") or private_meta.get("start_date")
        to_date = opts.to_date or response_meta.get("end_date") or private_meta.get("end_date")
        if conversation:
            try:  # it names the reject file and the Asset event's extra
                conversation = checked_conversation_id(conversation, "conversation_id")
            except ValueError as exc:
                raise ExhaustFatalError(str(exc)) from None
        return conversation, from_date, to_date

    def _log_load(self, summary: LoadSummary, name: str | None, no_answers: bool, no_users: bool) -> None:
        """One line of what the load did."""
        from_date, to_date = summary.from_date, summary.to_date
        bot = f"{name} ({summary.conversation_id})" if name else f"bot {summary.conversation_id}"
        if no_answers:
            self.log.info(
                "No answers for %s on %s..%s: %d earlier row(s) of those days removed, recorded as "
                "loaded empty in %s_loads",
                bot,
                from_date,
                to_date,
                summary.responses_replaced,
                summary.table,
            )
        else:
            self.log.info(
                "Loaded %d responses of %s on %s..%s (%d without a user row%s, %d earlier rows replaced) "
                "and %d users into %s, read %s; %d rejected",
                summary.responses_loaded,
                bot,
                from_date,
                to_date,
                summary.responses_without_user,
                ": the service found no users" if no_users else "",
                summary.responses_replaced,
                summary.users_loaded,
                summary.table,
                "with pyarrow" if summary.reader == "arrow" else "record by record",
                summary.rejected,
            )

    def _record_lineage(
        self,
        context: Context,
        summary: LoadSummary,
        response_meta: Mapping[str, Any],
        private_meta: Mapping[str, Any],
    ) -> None:
        """What the load read and wrote, for OpenLineage, and the warehouse Asset event's extra."""
        opts = self.options
        from_date, to_date = summary.from_date, summary.to_date
        self._read = [
            lineage.stored_file(str(copied["csv"]))
            for copied in (response_meta, private_meta)
            if copied.get("csv")
        ]
        self._table = lineage.warehouse_table(self._warehouse_url(), opts.table)
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            outlet_events[warehouse_asset(opts.table)].extra = {
                "conversation_id": summary.conversation_id,
                "from_date": from_date,
                "to_date": to_date,
                "rows": summary.responses_loaded,
                "users": summary.users_loaded,
            }

    def lineage(
        self, read: list[tuple[str, str]] | None = None, wrote: Sequence[tuple[str, str]] = ()
    ) -> Any:
        """OpenLineage: the copied files (or ``read``) in; ``wrote`` and the warehouse table, with its columns, out."""
        from airflow_provider_uci.exhaust.warehouse import RESPONSE_SCHEMA

        table = [self._table] if self._table else []
        return lineage.operator_lineage(
            self._read if read is None else read,
            [*wrote, *table],
            {table[0]: RESPONSE_SCHEMA} if table else None,
        )
