"""Open the private exhaust's zip: its one CSV entry, unzipped within a limit.

The CSV holds personal data: it is created with mode 0600, whole or not at all
(``exhaust.safe_files``). It is unzipped within a limit (:func:`unzip_limit`), so a zip bomb costs a
few seconds and no disk beyond the limit.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from airflow_provider_uci.exhaust.download import CHUNK_SIZE, MIB
from airflow_provider_uci.exhaust.safe_files import atomic_writer

#: The private zip's CSV may unzip to this many times the zip's size (real ones are 3 to 10 times it),
#: but to no less than :data:`UNZIP_FLOOR` and no more than :data:`UNZIP_CEILING`. The floor is small: a
#: zip of a few kilobytes holds a few users, not megabytes of them (a 4 KB zip of 4 MiB of newlines is not
#: an exhaust).
UNZIP_RATIO = 100
UNZIP_FLOOR = 1 * MIB
UNZIP_CEILING = 4096 * MIB


class PrivateZipError(ValueError):
    """The private exhaust zip is not what the service writes (one CSV entry)."""


class ZipPasswordError(PrivateZipError):
    """The private exhaust zip needs ``encryption_key``, or the key given does not open it."""


class ZipTooLarge(PrivateZipError):
    """The private exhaust zip's entry unzips to more than the limit; nothing of it was kept."""


def unzip_limit(zip_size: int) -> int:
    """The default limit on what a zip of ``zip_size`` bytes may unzip to: :data:`UNZIP_RATIO` times its
    size, within :data:`UNZIP_FLOOR` .. :data:`UNZIP_CEILING`."""
    return max(UNZIP_FLOOR, min(UNZIP_RATIO * zip_size, UNZIP_CEILING))


def open_private_zip(
    zip_path: Path,
    password: str | None,
    target_dir: Path,
    *,
    name: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_bytes: int | None = None,
) -> Path:
    """Extract the private exhaust zip's one CSV entry into ``target_dir``, streaming; return its path.

    The service protects the zip with ZipCrypto when the request carried an ``encryptionKey``
    (docs/service-contract.md §3.5), and leaves it unencrypted otherwise; an unencrypted zip opens with or
    without a key.
    The CSV is created with mode 0600 (``target_dir``, if made, 0700).

    :param zip_path: the downloaded zip.
    :param password: the request's encryption key, or ``None``.
    :param target_dir: where the CSV goes (created if needed).
    :param name: the CSV's file name (default: the entry's own name).
    :param chunk_size: bytes decompressed at a time.
    :param max_bytes: the most bytes the CSV may have (default :func:`unzip_limit` of the zip's size): an
        entry that says it is larger is refused before anything is unzipped, and unzipping stops (the
        partial file removed) as soon as more arrive.
    :raises ZipPasswordError: the zip is encrypted and no key was given, or the key is wrong.
    :raises ZipTooLarge: the entry unzips to more than ``max_bytes``.
    :raises PrivateZipError: the file is not a zip, or does not hold exactly one CSV entry.
    """
    zip_path, target_dir = Path(zip_path), Path(target_dir)
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_unzipped_bytes: must be at least 1, got {max_bytes}")
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise PrivateZipError(f"{zip_path.name}: not a zip file") from None
    with archive:
        entry = _single_csv(archive, zip_path)
        encrypted = bool(entry.flag_bits & 0x1)
        if encrypted and not password:
            raise ZipPasswordError(
                f"encryption_key: missing; {zip_path.name} is encrypted (the request was submitted with an "
                "encryptionKey), so give the same key as encryption_key (on the task or the connection)"
            )
        limit = _entry_limit(zip_path, entry, max_bytes)
        target = target_dir / _out_name(zip_path, entry, name)
        over_limit = (
            f"{zip_path.name}: its entry unzips to more than the limit of {limit} "
            f"bytes ({_limit_rule(max_bytes)}); stopped there, nothing kept"
        )
        try:
            _unzip(
                archive.open(entry, pwd=password.encode("utf-8") if password else None),
                target,
                limit,
                chunk_size,
                over_limit,
            )
        except (RuntimeError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise _unreadable(zip_path, exc, encrypted) from None
    return target


def _unreadable(zip_path: Path, exc: BaseException, encrypted: bool) -> PrivateZipError:
    """The error of an entry that cannot be unzipped: for an encrypted zip, a wrong key."""
    if encrypted:
        return ZipPasswordError(
            f"encryption_key: wrong key; the encryption_key given does not decrypt {zip_path.name} "
            "(it must be the encryptionKey the request was submitted with)"
        )
    return PrivateZipError(f"{zip_path.name}: cannot be read ({type(exc).__name__}: {exc})")


def _single_csv(archive: zipfile.ZipFile, zip_path: Path) -> zipfile.ZipInfo:
    """The zip's one entry, a CSV; anything else is refused."""
    entries = [info for info in archive.infolist() if not info.is_dir()]
    if len(entries) != 1 or not entries[0].filename.lower().endswith(".csv"):
        listed = ", ".join(info.filename for info in entries) or "nothing"
        raise PrivateZipError(f"{zip_path.name}: expected one CSV entry, found {listed}")
    return entries[0]


def _entry_limit(zip_path: Path, entry: zipfile.ZipInfo, max_bytes: int | None) -> int:
    """The most bytes the entry may unzip to; an entry that says it is larger is refused."""
    limit = unzip_limit(zip_path.stat().st_size) if max_bytes is None else max_bytes
    if entry.file_size > limit:
        raise ZipTooLarge(
            f"{zip_path.name}: its entry says it unzips to {entry.file_size} bytes, more than "
            f"the limit of {limit} ({_limit_rule(max_bytes)}); refused before unzipping it"
        )
    return limit


def _out_name(zip_path: Path, entry: zipfile.ZipInfo, name: str | None) -> str:
    """The CSV's file name: ``name``, or the entry's own when it makes one (no folder, no dot file)."""
    out_name = name or PurePosixPath(entry.filename).name
    if out_name in ("", ".", "..") or out_name.startswith("."):
        raise PrivateZipError(f"{zip_path.name}: its entry's name {entry.filename!r} makes no file name")
    return out_name


def _unzip(source: IO[bytes], target: Path, limit: int, chunk_size: int, over_limit: str) -> None:
    """Copy the open entry ``source`` to a new ``target`` (whole or not at all), refusing past ``limit``
    bytes with ``ZipTooLarge(over_limit)``."""
    with source, atomic_writer(target, field="the private zip's CSV") as sink:
        written = 0
        while chunk := source.read(chunk_size):
            written += len(chunk)
            if written > limit:
                raise ZipTooLarge(over_limit)
            sink.write(chunk)


def _limit_rule(max_bytes: int | None) -> str:
    if max_bytes is not None:
        return "max_unzipped_bytes"
    return (
        f"by default {UNZIP_RATIO} times the zip's size, at least {UNZIP_FLOOR // MIB} MiB and at most "
        f"{UNZIP_CEILING // MIB} MiB; for more, set max_unzipped_bytes, or --max-unzipped-mb of uci-exhaust"
    )
