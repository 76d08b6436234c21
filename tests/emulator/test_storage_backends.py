"""Signed downloads from both blob backends (local folder, Azure Blob via Azurite), over HTTP.

docs/service-contract.md §1.8 (download URLs are re-signed on every read and list, from the stored URL
turned into a key) and §3.5 (stored URL forms: ``wasb://`` for CSV files, ``https://`` for zips). Every
download is a plain GET with no credentials but the URL's own signature, as a client does with the real
service.
"""

from __future__ import annotations

import io
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from airflow_provider_uci.emulator.storage import key_from_stored_url
from tests.support.api import PRIVATE, RESPONSE, ExhaustApi, new_tag, submit_body
from tests.support.services import AZURITE_ACCOUNT, Azurite, Emulator, run_emulator

LOCAL_ACCOUNT = "uciemulator"
CHANNEL = "dev-channel"
CONVERSATION = "c63b6faa-11a9-4259-b941-11cd2f8446c6"
IST = ZoneInfo("Asia/Kolkata")

# The first download URL of the seed document's read sample (a real signed URL of the service).
SEED_SIGNED_URL = (
    "https://sunbirddevprivate.blob.core.windows.net/reports/uci-response-exhaust/1E2A13DA30671FDBA10C418C9EF14A70/"
    "c63b6faa-11a9-4259-b941-11cd2f8446c6_response_20220405.csv?sv=2017-04-17&se=2022-04-06T10%3A06%3A21Z&sr=b&sp=r"
    "&sig=L5etefAbBA/2PUQHaqSvbDPbyC%2BPfftS2jkf8y64R6E%3D"
)


# -- the key extraction rule, on its own ---------------------------------------------------------


def test_key_from_stored_wasb_url_drops_three_segments() -> None:
    stored = (
        "wasb://reports@sunbirddevprivate.blob.core.windows.net/uci-response-exhaust/"
        "1E2A13DA30671FDBA10C418C9EF14A70/c63b6faa-11a9-4259-b941-11cd2f8446c6_response_20220405.csv"
    )
    assert key_from_stored_url(stored) == (
        "uci-response-exhaust/1E2A13DA30671FDBA10C418C9EF14A70/c63b6faa-11a9-4259-b941-11cd2f8446c6_response_20220405.csv"
    )


def test_key_from_stored_https_url_drops_four_segments() -> None:
    stored = (
        "https://sunbirddevprivate.blob.core.windows.net/reports/uci-private-exhaust/"
        "84B26F9012D6E2E53BFC422B245C6350/d655cf03-1f6f-4510-acf6-d3f51b488a5e_userinfo_20220405.zip"
    )
    assert key_from_stored_url(stored) == (
        "uci-private-exhaust/84B26F9012D6E2E53BFC422B245C6350/d655cf03-1f6f-4510-acf6-d3f51b488a5e_userinfo_20220405.zip"
    )


def test_key_from_real_signed_url_keeps_everything_after_the_container() -> None:
    # The rule only drops segments: the query stays, and the "/" inside sig survives the split and join.
    assert key_from_stored_url(SEED_SIGNED_URL) == (
        "uci-response-exhaust/1E2A13DA30671FDBA10C418C9EF14A70/c63b6faa-11a9-4259-b941-11cd2f8446c6_response_20220405.csv"
        "?sv=2017-04-17&se=2022-04-06T10%3A06%3A21Z&sr=b&sp=r&sig=L5etefAbBA/2PUQHaqSvbDPbyC%2BPfftS2jkf8y64R6E%3D"
    )
    assert (
        key_from_stored_url(SEED_SIGNED_URL).split("?")[0] == urlsplit(SEED_SIGNED_URL).path.split("/", 2)[2]
    )


def test_key_rule_tests_for_http_anywhere_in_the_url() -> None:
    # "contains http", not "starts with": a wasb URL whose key mentions http loses four segments too.
    assert (
        key_from_stored_url("wasb://reports@acct.blob.core.windows.net/uci-response-exhaust/http-rid/f.csv")
        == "http-rid/f.csv"
    )


# -- backends -------------------------------------------------------------------------------------


@dataclass
class Backend:
    """One emulator with one storage backend, and how to make its next signature differ."""

    name: str
    emulator: Emulator
    account: str

    @property
    def api(self) -> ExhaustApi:
        return ExhaustApi(self.emulator.api)

    def clock_now(self) -> datetime:
        answer = requests.get(f"{self.emulator.root}/admin/clock", timeout=10)
        answer.raise_for_status()
        return datetime.fromisoformat(answer.json()["now"])

    def move_on(self) -> None:
        """Let time pass so that a new signature has a later ``se``."""
        if self.name == "local":
            self.emulator.set_clock((self.clock_now() + timedelta(seconds=61)).isoformat())
        else:
            time.sleep(1.1)  # Azure SAS expiry has whole seconds and follows real time


@pytest.fixture(scope="module")
def azure_emulator(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with run_emulator(
        tmp_path_factory.mktemp("emulator-azure"),
        "--storage",
        "azure",
        "--azure-connection-string",
        azurite.connection_string,
    ) as running:
        yield running


@pytest.fixture(params=["local", "azure"])
def backend(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[Backend]:
    if request.param == "local":
        try:
            yield Backend("local", emulator, LOCAL_ACCOUNT)
        finally:
            emulator.reset_clock()
    else:
        yield Backend("azure", request.getfixturevalue("azure_emulator"), AZURITE_ACCOUNT)


# -- helpers --------------------------------------------------------------------------------------


def submit(api: ExhaustApi, tag: str, **kwargs: object) -> dict:
    answer = api.submit(submit_body(tag, **kwargs))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def place(emulator: Emulator, tag: str, request_id: str, data: bytes, name: str | None = None) -> dict:
    """Store ``data`` as the job's file; returns the job with its stored (unsigned) URLs."""
    params = {"tag": f"{tag}:{CHANNEL}"} | ({"name": name} if name else {})
    answer = requests.post(
        f"{emulator.root}/admin/jobs/{request_id}/file", params=params, data=data, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def read_job(api: ExhaustApi, tag: str, request_id: str) -> dict:
    answer = api.read(tag, request_id)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def list_job(api: ExhaustApi, tag: str) -> dict:
    answer = api.list(tag)
    assert answer.status_code == 200, answer.text
    jobs = answer.json()["result"]["jobs"]
    assert len(jobs) == 1
    return jobs[0]


def plain_get(url: str, **headers: str) -> requests.Response:
    """A GET with no session and no credentials: only what the URL carries."""
    return requests.get(url, headers=headers, timeout=30)


def assert_refused(answer: requests.Response, backend: str) -> None:
    """403 with an Azure error body: the local route answers as Azure does (AuthenticationFailed);
    Azurite names a SAS it cannot verify AuthorizationFailure."""
    assert answer.status_code == 403, answer.text
    code = re.search(r"<Code>(\w+)</Code>", answer.text)
    assert code, answer.text
    assert code.group(1) in (
        {"AuthenticationFailed"} if backend == "local" else {"AuthenticationFailed", "AuthorizationFailure"}
    )


def sas(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def with_changed_sig(url: str) -> str:
    parts = urlsplit(url)
    pairs = [pair.split("=", 1) for pair in parts.query.split("&")]
    for pair in pairs:
        if pair[0] == "sig":
            sig = unquote(pair[1])
            at = next(i for i, char in enumerate(sig) if char.isalnum())
            sig = sig[:at] + ("B" if sig[at] == "A" else "A") + sig[at + 1 :]
            pair[1] = quote(sig, safe="")
    return urlunsplit(parts._replace(query="&".join("=".join(pair) for pair in pairs)))


def with_query_of(url: str, other: str) -> str:
    """``url``'s blob path with ``other``'s signature."""
    return urlunsplit(urlsplit(url)._replace(query=urlsplit(other).query))


def csv_bytes(label: str) -> bytes:
    return (
        f'Conversation ID,Message Text,@timestamp\r\n{label},"said \\"hi\\", then left",2022-04-05T10:00:00Z\r\n'
        "x,ünïcödé,2022-04-05T10:00:01Z\r\n"
    ).encode()


def ist_days(before: datetime, after: datetime) -> set[str]:
    return {before.astimezone(IST).strftime("%Y%m%d"), after.astimezone(IST).strftime("%Y%m%d")}


# -- both backends --------------------------------------------------------------------------------


def test_csv_is_stored_as_wasb_and_downloads_with_plain_and_ranged_gets(backend: Backend) -> None:
    api, tag = backend.api, new_tag()
    job = submit(api, tag)
    rid, data = job["requestId"], csv_bytes(tag)
    before = backend.clock_now()
    stored = place(backend.emulator, tag, rid, data)
    after = backend.clock_now()

    assert stored["status"] == "SUCCESS"
    (stored_url,) = stored["downloadUrls"]
    match = re.fullmatch(
        rf"wasb://reports@{backend.account}\.blob\.core\.windows\.net/uci-response-exhaust/{rid}/{CONVERSATION}_response_(\d{{8}})\.csv",
        stored_url,
    )
    assert match, stored_url
    assert match.group(1) in ist_days(before, after)  # the job run's IST date
    key = key_from_stored_url(stored_url)

    result = read_job(api, tag, rid)
    assert result["status"] == "SUCCESS"
    (url,) = result["downloadUrls"]
    parts = urlsplit(url)
    assert unquote(parts.path).endswith(f"/{backend.account}/reports/{key}")
    signature = sas(url)
    assert signature["sr"] == "b" and signature["sp"] == "r" and signature["se"] and signature["sig"]
    if backend.name == "local":
        assert signature["sv"] == "2017-04-17"
        assert parts.path == f"/blob/{LOCAL_ACCOUNT}/reports/{key}"

    whole = plain_get(url)
    assert whole.status_code == 200
    assert whole.content == data
    assert int(whole.headers["Content-Length"]) == len(data)

    ranged = plain_get(url, Range="bytes=2-5")
    assert ranged.status_code == 206
    assert ranged.content == data[2:6]
    assert ranged.headers["Content-Range"] == f"bytes 2-5/{len(data)}"


def test_every_read_and_list_signs_afresh(backend: Backend) -> None:
    api, tag = backend.api, new_tag()
    rid = submit(api, tag)["requestId"]
    data = csv_bytes(tag)
    place(backend.emulator, tag, rid, data)

    answers = []
    for step, call in enumerate((read_job, read_job, list_job, list_job)):
        if step:
            backend.move_on()
        answers.append(call(api, tag, rid) if call is read_job else call(api, tag))
    urls = [answer["downloadUrls"][0] for answer in answers]

    assert len(set(urls)) == 4
    assert len({urlsplit(url).path for url in urls}) == 1  # same blob, new signature each time
    expiries = [sas(url)["se"] for url in urls]
    assert expiries == sorted(expiries) and len(set(expiries)) == 4
    assert len({sas(url)["sig"] for url in urls}) == 4
    expires_at = [answer["expiresAt"] for answer in answers]
    assert expires_at == sorted(expires_at) and len(set(expires_at)) == 4
    for url in urls:  # all still within their lifetime
        answer = plain_get(url)
        assert answer.status_code == 200 and answer.content == data


def test_tampered_urls_are_refused(backend: Backend) -> None:
    api, tag = backend.api, new_tag()
    first = submit(api, tag)["requestId"]
    second = submit(api, tag, dataset=PRIVATE)["requestId"]
    place(backend.emulator, tag, first, b"first,file\n1,2\n")
    place(backend.emulator, tag, second, b"second,file\n3,4\n", name="second.csv")
    url = read_job(api, tag, first)["downloadUrls"][0]
    other = read_job(api, tag, second)["downloadUrls"][0]
    assert plain_get(url).content == b"first,file\n1,2\n"
    assert plain_get(other).content == b"second,file\n3,4\n"

    changed_sig = with_changed_sig(url)
    assert changed_sig != url
    assert_refused(plain_get(changed_sig), backend.name)

    moved = with_query_of(other, url)  # the other blob's path, this blob's signature
    assert_refused(plain_get(moved), backend.name)

    later = (datetime.fromisoformat(sas(url)["se"].replace("Z", "+00:00")) + timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    extended = url.replace(quote(sas(url)["se"], safe=""), quote(later, safe=""))
    assert extended != url
    assert_refused(plain_get(extended), backend.name)


def test_zip_is_stored_as_https_and_downloads(backend: Backend) -> None:
    api, tag = backend.api, new_tag()
    rid = submit(api, tag, dataset=PRIVATE)["requestId"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{CONVERSATION}_userinfo_20220405.csv", "Conversation ID,Device UUID\r\nc,d\r\n")
    data, name = buffer.getvalue(), f"{CONVERSATION}_userinfo_20220405.zip"

    stored = place(backend.emulator, tag, rid, data, name=name)
    key = f"uci-private-exhaust/{rid}/{name}"
    assert stored["downloadUrls"] == [f"https://{backend.account}.blob.core.windows.net/reports/{key}"]

    (url,) = read_job(api, tag, rid)["downloadUrls"]
    assert unquote(urlsplit(url).path).endswith(f"/{backend.account}/reports/{key}")
    answer = plain_get(url)
    assert answer.status_code == 200
    assert answer.content == data
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert (
            archive.read(f"{CONVERSATION}_userinfo_20220405.csv") == b"Conversation ID,Device UUID\r\nc,d\r\n"
        )


# -- expiry ---------------------------------------------------------------------------------------


def test_local_url_expires_after_thirty_minutes_of_emulator_time(emulator: Emulator) -> None:
    backend = Backend("local", emulator, LOCAL_ACCOUNT)
    api, tag = backend.api, new_tag()
    rid = submit(api, tag)["requestId"]
    place(emulator, tag, rid, b"a,b\n1,2\n")
    try:
        start = backend.clock_now()
        result = read_job(api, tag, rid)
        end = backend.clock_now()  # the read was signed between the two
        url = result["downloadUrls"][0]
        expiry = datetime.fromisoformat(sas(url)["se"].replace("Z", "+00:00"))  # whole seconds
        lifetime = timedelta(minutes=30)
        assert start + lifetime - timedelta(seconds=1) <= expiry <= end + lifetime
        assert (
            (start + lifetime).timestamp() * 1000 - 1
            <= result["expiresAt"]
            <= (end + lifetime).timestamp() * 1000 + 1
        )

        emulator.set_clock((start + timedelta(minutes=29)).isoformat())
        assert plain_get(url).status_code == 200
        emulator.set_clock((start + timedelta(minutes=30, seconds=2)).isoformat())
        assert_refused(plain_get(url), "local")
        fresh = read_job(api, tag, rid)["downloadUrls"][0]  # re-reading gives a working URL again
        assert plain_get(fresh).status_code == 200
    finally:
        emulator.reset_clock()


def test_azure_url_expires_after_its_lifetime(azurite: Azurite, tmp_path: Path) -> None:
    with run_emulator(
        tmp_path / "emulator",
        "--storage",
        "azure",
        "--azure-connection-string",
        azurite.connection_string,
        "--expiry-seconds",
        "2",
    ) as short:
        api, tag = ExhaustApi(short.api), new_tag()
        rid = submit(api, tag)["requestId"]
        place(short, tag, rid, b"a,b\n1,2\n", name=f"{uuid.uuid4()}.csv")
        url = read_job(api, tag, rid)["downloadUrls"][0]
        assert plain_get(url).status_code == 200
        time.sleep(3)
        assert_refused(plain_get(url), "azure")
        assert plain_get(read_job(api, tag, rid)["downloadUrls"][0]).status_code == 200


def test_download_route_serves_only_the_local_account(emulator: Emulator) -> None:
    api, tag = ExhaustApi(emulator.api), new_tag()
    rid = submit(api, tag, dataset=RESPONSE)["requestId"]
    place(emulator, tag, rid, b"a\n")
    url = read_job(api, tag, rid)["downloadUrls"][0]
    elsewhere = url.replace(f"/blob/{LOCAL_ACCOUNT}/", "/blob/someotheraccount/")
    assert plain_get(elsewhere).status_code == 404
    unsigned = url.split("?")[0]
    assert_refused(plain_get(unsigned), "local")
