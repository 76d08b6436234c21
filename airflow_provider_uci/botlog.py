"""Log lines that name the bot: the data code's own loggers, prefixed while a task works on one bot.

The data code (``exhaust/``, ``transfers/blob.py``) knows files, not bots; a task that handles one
bot's files prefixes what those modules log with the bot, so every line of its log says which bot.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

#: The loggers of the data code that a copy or a load runs.
DATA_LOGGERS = ("airflow_provider_uci.exhaust.download", "airflow_provider_uci.exhaust.load",
                "airflow_provider_uci.transfers.blob")


class _BotPrefix(logging.Filter):
    def __init__(self, bot: str) -> None:
        super().__init__()
        self.prefix = f"Bot {bot}: "

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
    prefix = _BotPrefix(bot)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addFilter(prefix)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeFilter(prefix)
