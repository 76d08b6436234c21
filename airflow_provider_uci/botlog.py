"""Log lines that name the bot: one prefix, ``Bot <conversation id>: ``, for every line about one bot.

Two ways in, one prefix: :func:`bot_log` wraps a task's own logger (the operators and the parts they
build log through it), and :func:`naming_bot` prefixes what the data code logs (``exhaust/``,
``transfers/blob.py`` know files, not bots) while a task works on one bot's files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

#: The loggers of the data code that a copy or a load runs.
DATA_LOGGERS = (
    "airflow_provider_uci.exhaust.download",
    "airflow_provider_uci.exhaust.load",
    "airflow_provider_uci.transfers.blob",
)


def prefix(bot: str | None) -> str:
    """The words that start every log line about ``bot``."""
    return f"Bot {bot}: " if bot else ""


class BotLog(logging.LoggerAdapter):  # type: ignore[type-arg]  # subscriptable only from Python 3.11
    """A task's logger whose every line starts with ``Bot <conversation id>: ``."""

    def __init__(self, log: Any, bot: str | None) -> None:
        super().__init__(log, {})
        self.bot = bot

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return (f"{prefix(self.bot)}{msg}" if isinstance(msg, str) else msg), kwargs


def bot_log(log: Any, bot: str | None) -> BotLog:
    """``log``, naming ``bot`` on every line (a ``BotLog`` is unwrapped first, so the prefix comes once)."""
    return BotLog(log.logger if isinstance(log, BotLog) else log, bot)


class _BotPrefix(logging.Filter):
    def __init__(self, bot: str) -> None:
        super().__init__()
        self.prefix = prefix(bot)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.msg.startswith(self.prefix):
            record.msg = self.prefix + record.msg
        return True


@contextmanager
def naming_bot(bot: str | None, loggers: tuple[str, ...] = DATA_LOGGERS) -> Iterator[None]:
    """Prefix every line the data code logs with ``Bot <bot>: `` while the block runs."""
    if not bot:
        yield
        return
    added = _BotPrefix(bot)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addFilter(added)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeFilter(added)
