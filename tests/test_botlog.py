"""botlog: every log line about a bot starts with ``Bot <conversation id>: ``, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from airflow_provider_uci.botlog import BotLog, bot_log, naming_bot, prefix

BOT = "c63b6faa-11a9-4259-b941-11cd2f8446c6"
OTHER = "a1a1a1a1-0000-4000-8000-00000000000a"


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    """A plain standard-library logger whose lines ``caplog`` records."""
    caplog.set_level(logging.DEBUG, logger="tests.botlog")
    yield logging.getLogger("tests.botlog")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("tests.botlog")]


def test_every_line_is_prefixed_once(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    log = bot_log(logger, BOT)
    assert isinstance(log, BotLog) and log.logger is logger
    log.debug("one")
    log.info("%s job %s is %s", "uci-response-exhaust", "R1", "SUBMITTED")
    log.warning("three %d", 3)
    log.error("four")
    assert lines(caplog) == [
        f"Bot {BOT}: one",
        f"Bot {BOT}: uci-response-exhaust job R1 is SUBMITTED",
        f"Bot {BOT}: three 3",
        f"Bot {BOT}: four",
    ]
    assert [record.levelno for record in caplog.records] == [
        logging.DEBUG,
        logging.INFO,
        logging.WARNING,
        logging.ERROR,
    ]


def test_wrapping_a_bot_log_prefixes_once_naming_the_new_bot(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    first = bot_log(logger, BOT)
    again = bot_log(first, BOT)
    other = bot_log(bot_log(first, OTHER), OTHER)
    assert again.logger is logger and other.logger is logger, "a BotLog is unwrapped, not nested"
    again.info("same bot")
    other.info("other bot")
    first.info("the first still names its own")
    assert lines(caplog) == [
        f"Bot {BOT}: same bot",
        f"Bot {OTHER}: other bot",
        f"Bot {BOT}: the first still names its own",
    ]


def test_no_bot_no_prefix_and_non_text_messages_pass_unchanged(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    assert prefix(None) == prefix("") == "" and prefix(BOT) == f"Bot {BOT}: "
    bot_log(logger, None).info("plain %s", "line")
    bot_log(logger, "").info("plain too")
    error = ValueError("boom")
    bot_log(logger, BOT).info(error)
    assert lines(caplog) == ["plain line", "plain too", "boom"]
    assert caplog.records[-1].msg is error


def test_the_adapter_and_the_data_code_filter_together_prefix_once(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    data = logging.getLogger("tests.botlog.data")
    with naming_bot(BOT, loggers=("tests.botlog", "tests.botlog.data")):
        bot_log(logger, BOT).info("from the task")
        data.info("from the data code %s", "file.csv")
        logger.info("from the task's plain logger")
    data.info("after the block")
    assert lines(caplog) == [
        f"Bot {BOT}: from the task",
        f"Bot {BOT}: from the data code file.csv",
        f"Bot {BOT}: from the task's plain logger",
        "after the block",
    ]
    assert all(not logging.getLogger(name).filters for name in ("tests.botlog", "tests.botlog.data")), (
        "the filter is gone after the block"
    )


def test_a_tasks_own_logger_is_prefixed_once() -> None:
    """An operator's ``self.log`` (structlog in Airflow 3), wrapped once and again."""
    from airflow.sdk import BaseOperator

    task_log = BaseOperator(task_id="botlog").log
    with structlog.testing.capture_logs() as captured:
        log = bot_log(task_log, BOT)
        log.info("%s job %s is %s", "uci-private-exhaust", "R2", "SUCCESS")
        bot_log(log, BOT).warning("again %d", 2)
    assert [(event["log_level"], event["event"]) for event in captured] == [
        ("info", f"Bot {BOT}: uci-private-exhaust job R2 is SUCCESS"),
        ("warning", f"Bot {BOT}: again 2"),
    ]
