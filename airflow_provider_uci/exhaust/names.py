"""Values that become a path or a name: a bot's conversation id must be a UUID before it is used as one.

A conversation id names folders (``<destination>/<conversation_id>/...``), reject files and report
pages, and is read from places an attacker may write (a file's first record, an Asset event's extra,
a DAG run's params). Only the 36-character UUID form (hex digits and four hyphens) is taken, so no
value can hold ``/``, ``..``, a NUL or a line break. No Airflow import: the data code, the CLI and the
DAGs call the same rule.
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


class InvalidConversationId(ValueError):
    """A conversation id is not a UUID; the message names the field it came from.

    :param field: where the value came from (a parameter, a flag, a file and column).
    """

    def __init__(self, field: str, value: object) -> None:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80]) + "..."
        super().__init__(f"{field}: must be a UUID, 8-4-4-4-12 hex digits (the bot's conversation id), got {shown}")
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
