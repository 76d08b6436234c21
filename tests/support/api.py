"""A plain HTTP client of the Data Exhaust API for tests: no project code, just ``requests``."""

from __future__ import annotations

import uuid
from typing import Any

import requests

RESPONSE = "uci-response-exhaust"
PRIVATE = "uci-private-exhaust"


def new_tag() -> str:
    """A fresh tag, so a test sees only its own jobs."""
    return str(uuid.uuid4())


def submit_body(
    tag: str | None,
    *,
    dataset: str = RESPONSE,
    conversation_id: str = "c63b6faa-11a9-4259-b941-11cd2f8446c6",
    start: str = "2022-03-01",
    end: str = "2022-04-01",
    requested_by: str = "user_id",
    zip_password: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The seed document's submit body, with the given values."""
    request: dict[str, Any] = {
        "dataset": dataset,
        "tag": tag,
        "requestedBy": requested_by,
        "datasetConfig": {
            "type": dataset,
            "conversationId": conversation_id,
            "startDate": start,
            "endDate": end,
        },
    }
    if zip_password is not None:
        request["encryptionKey"] = zip_password
    request.update(extra)
    return {
        "id": "ekstep.analytics.job.request.submit",
        "ver": "1.0",
        "ts": "2022-02-15T10:07:00+05:30",
        "params": {"msgid": str(uuid.uuid4())},
        "request": request,
    }


class ExhaustApi:
    """Calls the gateway routes with an API key and channel, as a real client would."""

    def __init__(self, base: str, key: str | None = "dev-key", channel: str | None = "dev-channel") -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.key = key
        self.channel = channel

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.key is not None:
            headers["Authorization"] = f"Bearer {self.key}"
        if self.channel is not None:
            headers["X-Channel-ID"] = self.channel
        headers.update(extra)
        return headers

    def submit(self, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.session.post(
            f"{self.base}/dataset/v1/request/submit", json=body, headers=self.headers(**headers), timeout=30
        )

    def read(self, tag: str, request_id: str | None, **headers: str) -> requests.Response:
        params = {} if request_id is None else {"requestId": request_id}
        return self.session.get(
            f"{self.base}/dataset/v1/request/read/{tag}",
            params=params,
            headers=self.headers(**headers),
            timeout=30,
        )

    def list(self, tag: str, limit: int | str | None = None, **headers: str) -> requests.Response:
        params = {} if limit is None else {"limit": limit}
        return self.session.get(
            f"{self.base}/dataset/v1/request/list/{tag}",
            params=params,
            headers=self.headers(**headers),
            timeout=30,
        )
