"""Values that become a path or a name: a bot's conversation id must be a UUID before it is used as one.

A conversation id names folders (``<destination>/<conversation_id>/...``), reject files and report
pages, and is read from places an attacker may write (a file's first record, an Asset event's extra,
a DAG run's params). Only the 36-character UUID form (hex digits and four hyphens) is taken, so no
value can hold ``/``, ``..``, a NUL or a line break. No Airflow import: the data code, the CLI and the
DAGs call the same rule, and take from here the names they all use: the default table and the service's
datasets.
"""

from __future__ import annotations

import re

#: The warehouse table of responses when none is named; its users and loads tables add ``_users`` and
#: ``_loads`` to it.
DEFAULT_TABLE = "uci_responses"
#: The service's two datasets (``models.Dataset`` is them as an enum); they name the downloaded files too.
RESPONSE_DATASET = "uci-response-exhaust"
PRIVATE_DATASET = "uci-private-exhaust"
DATASETS = (RESPONSE_DATASET, PRIVATE_DATASET)

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


class InvalidConversationId(ValueError):
    """A conversation id is not a UUID; the message names the field it came from.

    :param field: where the value came from (a parameter, a flag, a file and column).
    """

    def __init__(self, field: str, value: object) -> None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80]) + "..."
        super().__init__(
            f"{field}: must be a UUID, 8-4-4-4-12 hex digits (the bot's conversation id), got {shown}"
        )
        self.field = field


def conversation_id(value: object, field: str = "conversation_id") -> str:
    """Return ``value`` if it is a conversation id in its 36-character UUID form, else raise naming ``field``.

    :param value: the id to check (any type: only a string can pass).
    :param field: where it came from, for the message (``conversation_id``, ``--conversation-id``,
        ``response.csv: Conversation ID``...).
    :raises InvalidConversationId: a ``ValueError`` naming ``field`` and the rule.
    """
    if not isinstance(value, str) or _UUID.fullmatch(value) is None:
        raise InvalidConversationId(field, value)
    return value


_DATASET = re.compile(r"[a-z][a-z0-9-]{0,62}")
#: The kinds of file a job lists: the response exhaust's CSV, the private exhaust's zip (or CSV).
FILE_SUFFIXES = (".csv", ".zip")


def dataset_file_names(dataset: object, suffixes: list[str]) -> list[str]:
    """The fixed names a job's files are saved under: ``<dataset><suffix>``, numbered when there are several.

    The service's own file names are not used: a name it chose (``.bashrc``) must not pick where a file lands.

    :param dataset: the job's dataset (``uci-response-exhaust``...): lower-case letters, digits and ``-``.
    :param suffixes: each file's suffix, from its URL: ``.csv`` or ``.zip``.
    :raises ValueError: naming ``dataset`` or ``download_urls`` and the rule.
    """
    if not isinstance(dataset, str) or _DATASET.fullmatch(dataset) is None:
        raise ValueError(
            f"dataset: must be lower-case letters, digits and '-' to name a file, got {dataset!r}"
        )
    for number, suffix in enumerate(suffixes):
        if suffix not in FILE_SUFFIXES:
            raise ValueError(
                f"download_urls[{number}]: a file ending in {' or '.join(FILE_SUFFIXES)} expected, "
                f"got {suffix[:20]!r}"
            )
    if len(suffixes) == 1:
        return [f"{dataset}{suffixes[0]}"]
    return [f"{dataset}-{number}{suffix}" for number, suffix in enumerate(suffixes, start=1)]


def url_suffix(url: str) -> str:
    """A download URL's file suffix, lower case (``.csv`` when its path has none)."""
    from pathlib import PurePosixPath
    from urllib.parse import urlsplit

    return PurePosixPath(urlsplit(url).path).suffix.lower() or ".csv"
