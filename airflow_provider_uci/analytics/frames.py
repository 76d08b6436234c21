"""Exhausts as pandas DataFrames, read as the load reads them.

``pandas.read_csv`` does not know Spark's CSV dialect: without an escape character it splits and
merges rows at every ``\\"``, and with ``escapechar="\\\\"`` it drops the backslash of every JSON
escape (``\\n`` in an answer becomes ``n``). These readers go through the loader's own readers
instead (``exhaust.reader`` for responses, ``exhaust.records`` for users), so a value reads the same
in a notebook, in the warehouse and in the report.

Columns are named as the warehouse names them (``exhaust.records.RESPONSE_TABLE_COLUMNS``, then
``sync_date``), whatever the vintage of the header; a column the vintage lacks is all null. Types:
text as pandas ``string`` (JSON kept exactly as written, ``""`` apart from null), whole numbers as
``Int64``, ``eof`` as ``boolean``, timestamps as UTC ``datetime64``, ``sync_date`` (the IST day the
answer was synced on) as ``datetime.date``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_uci.exhaust.private_records import read_users
from airflow_provider_uci.exhaust.records import (
    RESPONSE_HEADERS,
    RESPONSE_TABLE_COLUMNS,
    USER_TABLE_COLUMNS,
    ExhaustFormatError,
)
from airflow_provider_uci.exhaust.rejects import Rejects
from airflow_provider_uci.extras import require

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["RESPONSE_FRAME_COLUMNS", "read_joined_exhaust", "read_private_exhaust", "read_response_exhaust"]

RESPONSE_FIELDS = tuple(RESPONSE_HEADERS.values())
#: Columns of :func:`read_response_exhaust`'s frame.
RESPONSE_FRAME_COLUMNS = (*RESPONSE_FIELDS, "sync_date")
#: Columns of :func:`read_joined_exhaust`'s frame: the warehouse table's, without ``load_id``.
JOINED_FRAME_COLUMNS = (*RESPONSE_TABLE_COLUMNS, "sync_date")


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """An arrow table as a frame of nullable pandas types (``string``, ``Int64``, ``boolean``)."""
    require(["analytics"], "a pandas DataFrame", modules=["pandas"])
    import pandas as pd
    import pyarrow as pa

    mapping = {pa.string(): pd.StringDtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


def _response_table(path: Path) -> pa.Table:
    """The file read as the load reads it (``exhaust.reader``); any record that breaks a rule fails the read,
    naming it."""
    import pyarrow as pa

    from airflow_provider_uci.exhaust.reader import ResponseBatches, response_schema

    rejects = Rejects()
    table = pa.Table.from_batches(list(ResponseBatches(path, rejects, None)), schema=response_schema())
    if rejects.count:
        raise ExhaustFormatError(f"{path.name}: {rejects.count} record(s) break a rule: {rejects.summary()}")
    return table


def read_response_exhaust(path: str | Path) -> pd.DataFrame:
    """Read a response exhaust CSV (Spark's dialect, any vintage) into a typed DataFrame.

    :param path: the ``uci-response-exhaust.csv`` file.
    :return: one row per answer, in file order, with :data:`RESPONSE_FRAME_COLUMNS`.
    :raises ExhaustFormatError: the file is not a response exhaust, or a record breaks a rule (the
        message names its line and the rule).
    """
    return _to_pandas(_response_table(Path(path)))


def read_private_exhaust(
    path_or_zip: str | Path, password: str | None = None, phone_numbers: str = "plain"
) -> pd.DataFrame:
    """Read a private exhaust (its CSV, or the zip as downloaded) into a DataFrame of users.

    :param path_or_zip: ``uci-private-exhaust.csv``, or ``uci-private-exhaust.zip``.
    :param password: the zip's password (the request's encryption key); ``None`` for a plain zip.
    :param phone_numbers: ``plain``, ``hashed`` (SHA-256) or ``none``, as the load stores them.
    :return: one row per bot and device (the last the file holds, as the load keeps it), with the
        users table's columns: ``conversation_id``, ``device_uuid``, ``conversation_name``, ``phone``
        (null without consent), ``encrypted_device_id``, ``consented``.
    :raises ExhaustFormatError: not a private exhaust, or a record breaks a rule (named).
    """
    path = Path(path_or_zip)
    if path.suffix.lower() != ".zip":
        return _users_frame(path, phone_numbers)
    from airflow_provider_uci.exhaust.private_zip import open_private_zip

    with tempfile.TemporaryDirectory(prefix="uci-frames-") as scratch:  # mode 0700, removed however it ends
        return _users_frame(open_private_zip(path, password, Path(scratch)), phone_numbers)


def _users_frame(path: Path, phone_numbers: str) -> pd.DataFrame:
    import pyarrow as pa

    rejects = Rejects()
    users = {
        (user.conversation_id, user.device_uuid): user for user in read_users(path, rejects, phone_numbers)
    }
    if rejects.count:
        raise ExhaustFormatError(f"{path.name}: {rejects.count} record(s) break a rule: {rejects.summary()}")
    columns = list(zip(*users.values(), strict=True)) or [()] * len(USER_TABLE_COLUMNS)
    schema = pa.schema(
        [(name, pa.bool_() if name == "consented" else pa.string()) for name in USER_TABLE_COLUMNS]
    )
    return _to_pandas(
        pa.table(
            [
                pa.array(list(values), schema.field(name).type)
                for name, values in zip(USER_TABLE_COLUMNS, columns, strict=True)
            ],
            schema=schema,
        )
    )


def read_joined_exhaust(
    response: str | Path,
    private: str | Path | None = None,
    password: str | None = None,
    phone_numbers: str = "plain",
) -> pd.DataFrame:
    """Read a response exhaust joined to its private exhaust, as the load writes the warehouse table.

    Every answer is kept (a left join on ``Device ID`` = ``Device UUID`` within the bot), with the
    user's ``user_phone`` and ``user_encrypted_device_id`` (null without a user or a private exhaust).

    :return: the columns of :data:`JOINED_FRAME_COLUMNS`, rows in file order.
    """
    import pandas as pd

    answers = read_response_exhaust(response)
    if private is None:
        for column in ("user_phone", "user_encrypted_device_id"):
            answers[column] = pd.Series(pd.NA, index=answers.index, dtype=pd.StringDtype())
        return answers[list(JOINED_FRAME_COLUMNS)]
    users = read_private_exhaust(private, password, phone_numbers)
    users = users.rename(
        columns={
            "device_uuid": "device_id",
            "phone": "user_phone",
            "encrypted_device_id": "user_encrypted_device_id",
        }
    )
    joined = answers.merge(
        users[["conversation_id", "device_id", "user_phone", "user_encrypted_device_id"]],
        on=["conversation_id", "device_id"],
        how="left",
        validate="many_to_one",
    )
    return joined[list(JOINED_FRAME_COLUMNS)]
