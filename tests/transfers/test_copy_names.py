"""A copy's destination paths are made only of a UUID conversation id, plain dates and fixed file names: no value a
job (or an XCom) carries can walk out of the destination or pick a file's name."""

from __future__ import annotations

import pytest

from airflow_provider_uci.models import ExhaustValidationError
from airflow_provider_uci.transfers.exhaust import file_names, job_folder

BOT = "a1a1a1a1-0000-4000-8000-00000000000a"


def test_the_folder_is_the_bot_and_the_range() -> None:
    assert job_folder({"conversation_id": BOT, "start_date": "2026-03-08", "end_date": "2026-03-09"}) == (
        f"{BOT}/2026-03-08_2026-03-09"
    )


@pytest.mark.parametrize("conversation", ["../../escaped", "bot-1", f"{BOT}/..", f"{BOT}\n", "", None])
def test_a_conversation_id_that_is_not_a_uuid_names_no_folder(conversation: object) -> None:
    with pytest.raises(ExhaustValidationError, match=r"^conversation_id: must be a UUID"):
        job_folder({"conversation_id": conversation, "start_date": "2026-03-08", "end_date": "2026-03-09"})


@pytest.mark.parametrize("day", ["2026-03-08\n", "../x", "2026/03/08"])
def test_a_date_that_is_not_a_plain_segment_names_no_folder(day: str) -> None:
    with pytest.raises(ExhaustValidationError, match=r"^start_date: "):
        job_folder({"conversation_id": BOT, "start_date": day, "end_date": "2026-03-09"})


def test_file_names_are_fixed_per_dataset() -> None:
    assert file_names("uci-private-exhaust", [".zip"]) == ["uci-private-exhaust.zip"]
    assert file_names("uci-response-exhaust", [".csv", ".csv"]) == [
        "uci-response-exhaust-1.csv",
        "uci-response-exhaust-2.csv",
    ]
    with pytest.raises(ExhaustValidationError, match=r"^download_urls\[0\]: a file ending in .csv or .zip"):
        file_names("uci-response-exhaust", [".sh"])
    with pytest.raises(ExhaustValidationError, match=r"^dataset: "):
        file_names("uci-response-exhaust\n", [".csv"])
