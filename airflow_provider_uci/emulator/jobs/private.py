"""The private exhaust job: the bot's registered users, zipped and encrypted.

As docs/service-contract.md §3.4 and §3.5 describe it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from airflow_provider_uci.emulator.crypto import decrypt_username, zip_single_file
from airflow_provider_uci.emulator.jobs.common import (
    JobContext,
    JobFailure,
    ProcessingError,
    conversation_of,
    output_key,
    write_report,
)
from airflow_provider_uci.emulator.storage import https_url, wasb_url
from airflow_provider_uci.emulator.store import JobRow
from airflow_provider_uci.emulator.ucidb import PRIVATE_CONSENT_PATH, UserDataError, consent_at

DATASET = "uci-private-exhaust"
COLUMNS = (
    "Conversation ID",
    "Conversation Name",
    "Decrypted Device ID",
    "Encrypted Device ID",
    "Device UUID",
)


def report_rows(context: JobContext, conversation_id: str, bot_name: str) -> Iterator[list[str | None]]:
    """One row per registered user and identity; the phone number only with consent."""
    secret = context.settings.encryption_secret
    for application_id, user_id, data, username in context.uci.private_rows(conversation_id):
        try:
            consent = consent_at(data, PRIVATE_CONSENT_PATH)
        except UserDataError as exc:
            raise ProcessingError(str(exc)) from None
        decrypted = decrypt_username(username, secret) if consent else user_id
        yield [application_id, bot_name, decrypted, username, user_id]


def run(context: JobContext, request: JobRow, workdir: Path) -> tuple[list[str], int]:
    """Process one request; return the stored download URLs and the processing time in ms."""
    conversation_id = conversation_of(request)
    bot = context.uci.bot(conversation_id, request.requested_channel)
    if bot is None:
        raise JobFailure("No data found for conversation in DB")
    name = f"{conversation_id}_userinfo_{context.run_day()}.csv"
    local = workdir / name
    elapsed = write_report(context, local, COLUMNS, report_rows(context, conversation_id, bot.name))
    container, account = context.settings.reports_container, context.storage.account
    key = output_key(DATASET, request.request_id, name)
    with context.timer() as zip_timer:
        archive = workdir / name.replace("csv", "zip")
        try:
            zip_single_file(local, archive, name, request.encryption_key)
        except ValueError:
            # zip4j refuses an empty password; the real job ignores the zip error and keeps the CSV
            context.storage.upload_file(container, key, local)
            return [wasb_url(account, container, key)], elapsed
    # unlike the real job, the plain CSV (phone numbers) is not stored beside its zip: only the zip is kept
    zip_key = key.replace("csv", "zip")
    context.storage.upload_file(container, zip_key, archive)
    return [https_url(account, container, zip_key)], elapsed + zip_timer.ms
