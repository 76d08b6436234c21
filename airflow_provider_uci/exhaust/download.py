"""Fetch one exhaust file through its signed URL.

Signed URLs expire (docs/service-contract.md §1.8: 30 minutes), signed in the query (``sig=``), so
:func:`download_to` asks ``url_source`` for freshly signed URLs before every attempt and never names a
URL in an error or a log line: it names the file. Bodies stream into a :class:`Sink` in chunks, a
cut-off body is resumed with a ranged GET where the server allows it, and the byte count is checked
against ``Content-Length`` (and the ``Content-Range`` total). :func:`download` is the sink for a local
file: a new scratch file beside it, renamed into place once complete (``exhaust.safe_files``: never
through a planted link, never over what is not a regular file), created with mode 0600 in folders made
0700 (``exhaust.at_rest``): exhaust files are personal data. The private zip is opened by
``exhaust.private_zip``.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from airflow_provider_uci.exhaust.safe_files import atomic_writer
from airflow_provider_uci.retry import RetryPolicy, Verdict

if TYPE_CHECKING:  # imported on first download: a task that copies nothing does not pay for them
    import requests

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: Bytes read and written at a time: a buffer that stays in the CPU's cache between the socket read and
#: the write, which doubles throughput over 1 MiB or more here (tests/benchmarks/copy.py).
CHUNK_SIZE = 256 * 1024
#: (connect, read) seconds for one download call.
DEFAULT_TIMEOUT = (10.0, 60.0)
#: The longest wait between two attempts.
MAX_BACKOFF = 30.0

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@cache
def _transient() -> tuple[type[BaseException], ...]:
    """What a download attempt may meet that a later attempt can mend."""
    import requests
    import urllib3

    return (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
        urllib3.exceptions.HTTPError,
        # what the standard library's response raises when read from directly (see _body)
        http.client.HTTPException,
        ConnectionError,
        TimeoutError,
    )


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the file, never its signed URL."""


class _Retry(Exception):
    """One attempt failed in a way a fresh URL, a resume or a restart may mend."""

    def __init__(self, reason: str, *, restart: bool = False, total: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.restart = restart
        self.total = total


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class Sink(Protocol):
    """Where :func:`download_to` writes a file's bytes, in order."""

    def write(self, data: bytes | memoryview, /) -> Any:
        """Append ``data`` (a view that is reused once this returns: copy what must be kept)."""

    def tell(self) -> int:
        """The bytes written so far."""

    def restart(self) -> None:
        """Forget every byte written: the file is fetched again from its start."""


class _FileSink:
    """A :class:`Sink` over an open binary file."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.write = handle.write
        self.tell = handle.tell
        self._handle = handle

    def restart(self) -> None:
        self._handle.seek(0)
        self._handle.truncate()


def download(url_source: Callable[[], list[str]], index: int, target: Path, **options: Any) -> int:
    """Stream file number ``index`` of a job to ``target`` in constant memory; return its size in bytes.

    The file appears at ``target`` only once it is complete: it is written to a new scratch file beside it
    (mode 0600; its folder is made 0700 if missing) and renamed (``exhaust.safe_files.atomic_writer``).
    ``options`` are those of :func:`download_to`.

    :raises UnsafeTarget: ``target`` is a link, a folder, a FIFO or a device node.
    """
    target = Path(target)
    with atomic_writer(target, field="target") as handle:
        return download_to(url_source, index, _FileSink(handle), name=target.name, **options)


def download_to(
    url_source: Callable[[], list[str]],
    index: int,
    sink: Sink,
    *,
    name: str,
    attempts: int = 5,
    chunk_size: int = CHUNK_SIZE,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    backoff: float = 1.0,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Stream file number ``index`` of a job into ``sink`` in constant memory; return its size in bytes.

    Before each attempt ``url_source()`` is called for the job's current (freshly signed) download
    URLs. A cut-off body, a dropped connection, a 5xx, a 429 or a 403 (an expired or refused
    signature) is retried; after a cut-off the next attempt asks for the remaining bytes with a
    ``Range`` header and appends them when the server answers 206, or restarts the sink otherwise.
    On return the sink holds the whole file, its size checked against ``Content-Length`` (and the
    ``Content-Range`` total).

    :param url_source: returns the job's download URLs, signed now (e.g. by reading the job again).
    :param index: which of the job's files to fetch.
    :param sink: where the bytes go.
    :param name: the file's name, for errors and log lines (which never hold its URL).
    :param attempts: attempts in all, the first included.
    :param chunk_size: bytes read and written at a time.
    :param session: the HTTP session to use (a new one by default).
    :param sleep: waits between attempts (injectable for tests).
    :param backoff: seconds before the second attempt, doubled each time (none after a 403).
    :param timeout: (connect, read) timeouts in seconds.
    :param progress: called after each chunk with the bytes in hand and the expected total (if known).
    :raises DownloadError: when every attempt failed, or on an answer retrying cannot mend.
    """
    if attempts < 1:
        raise ValueError(f"attempts: must be at least 1, got {attempts}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be at least 1, got {chunk_size}")
    what = f"exhaust file {index} ({name})"
    own_session = session is None
    if session is None:
        import requests

        session = requests.Session()
    attempt = _Attempts(url_source, index, sink, session, chunk_size, timeout, what, progress)
    policy = RetryPolicy(attempts=attempts, backoff=backoff, max_backoff=MAX_BACKOFF)
    try:
        policy.call(attempt, what=what, log=log, sleep=sleep, give_up=DownloadError)
        written = sink.tell()
    finally:
        if own_session:
            session.close()
    log.info("%s: downloaded %d bytes", what, written)
    return written


class _Attempts:
    """The attempts at one file: each fetches what the sink lacks, and says whether to try again."""

    def __init__(
        self,
        url_source: Callable[[], list[str]],
        index: int,
        sink: Sink,
        http: requests.Session,
        chunk_size: int,
        timeout: tuple[float, float],
        what: str,
        progress: Callable[[int, int | None], None] | None,
    ) -> None:
        self.url_source, self.index, self.sink, self.http = url_source, index, sink, http
        self.chunk_size, self.timeout, self.what, self.progress = chunk_size, timeout, what, progress
        self.expected: int | None = None  # the file's size, once an answer told it

    def __call__(self) -> Verdict:
        sink = self.sink
        try:
            url = _url(self.url_source, self.index, self.what)
            self.expected = _attempt(
                self.http, url, sink, self.expected, self.chunk_size, self.timeout, self.what, self.progress
            )
            return Verdict(result=self.expected)
        except _Retry as failure:
            reason = failure.reason
            if failure.restart:
                sink.restart()
                self.expected = None
            elif failure.total is not None:
                self.expected = failure.total
        except _transient() as exc:
            # The exception's own text names the URL (and its signature): keep its type only.
            reason = f"{type(exc).__name__} after {sink.tell()} bytes"
        if self.expected is not None and sink.tell() == self.expected:
            return Verdict(result=self.expected)  # every byte arrived before the connection failed
        # a refused signature is re-signed at once: the next attempt reads the job again
        return Verdict.transient(reason, retry_after=0.0 if reason.startswith("HTTP 403") else None)


def _url(url_source: Callable[[], list[str]], index: int, what: str) -> str:
    urls = list(url_source())
    if not 0 <= index < len(urls):
        raise DownloadError(f"{what}: the job lists {len(urls)} download URL(s), so there is no file {index}")
    return urls[index]


def _attempt(
    http: requests.Session,
    url: str,
    sink: Sink,
    total: int | None,
    chunk_size: int,
    timeout: tuple[float, float],
    what: str,
    progress: Callable[[int, int | None], None] | None = None,
) -> int | None:
    """One GET, appending what arrives to ``sink``; return the file's expected size."""
    written = sink.tell()
    headers = {"Accept-Encoding": "identity"}
    if written:
        headers["Range"] = f"bytes={written}-"
    with http.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as response:
        status = response.status_code
        if status == 403:
            raise _Retry("HTTP 403 (the signed URL expired or was refused)")
        if status >= 500 or status in (408, 429):
            raise _Retry(f"HTTP {status}")
        if status == 416:
            raise _Retry("HTTP 416 (the range asked for no longer fits the file)", restart=True)
        length = _content_length(response)
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != written:
                raise _Retry("HTTP 206 with a range that does not continue the file", restart=True)
            if match.group(3) != "*":
                range_total = int(match.group(3))
                if total is not None and range_total != total:
                    raise _Retry(f"the file changed size ({total} -> {range_total} bytes)", restart=True)
                total = range_total
        elif status == 200:
            if written:
                # The server ignored the Range header: the body is the whole file again.
                sink.restart()
                written = 0
            total = length
        else:
            raise DownloadError(f"{what}: HTTP {status} {response.reason or ''}".rstrip())
        received = 0
        try:
            for chunk in _body(response, chunk_size):
                if chunk:
                    sink.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(written + received, total)
                    del chunk  # a view of the buffer the next read fills
        except _transient() as exc:
            raise _Retry(f"{type(exc).__name__} after {written + received} bytes", total=total) from None
    if length is not None and received != length:
        raise _Retry(f"body cut short: {received} of {length} bytes", total=total)
    if total is not None and written + received != total:
        raise _Retry(f"file incomplete: {written + received} of {total} bytes", total=total)
    return total


def _body(response: requests.Response, chunk_size: int) -> Iterator[bytes | memoryview]:
    """The body as it came, read into one reused buffer straight from the standard library's HTTP
    response under urllib3 (its read and requests' decoding layer each copy every chunk once more);
    through urllib3 when that is not at hand, and through requests when the server encoded the body."""
    if response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        yield from response.iter_content(chunk_size=chunk_size)
        return
    plain = getattr(response.raw, "_fp", None)
    if not isinstance(plain, http.client.HTTPResponse):
        read = response.raw.read
        while chunk := read(chunk_size, decode_content=False):
            yield chunk
        return
    buffer = memoryview(bytearray(chunk_size))
    while count := plain.readinto(buffer):
        yield buffer[:count]
