"""The private exhaust's cryptography: AES/ECB/PKCS5 identities, and ZipCrypto-protected zips.

UCI stores each identity's username (``phone:<number>``) AES-encrypted with ECB mode and PKCS#5
padding, base64-encoded; the job decrypts it with the base64 ``uci.encryption.secret``. The zip
of the private exhaust is protected with traditional PKWARE encryption ("ZipCrypto", zip4j's
``ZIP_STANDARD``), which Python's :mod:`zipfile` reads with ``pwd=`` but cannot write. The zip
passwords the job store keeps until the nightly job uses them are sealed (AES-256-GCM, :func:`seal`)
under a key derived from the emulator's own secret, so the store's file holds none of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from airflow_provider_uci.exhaust.safe_files import atomic_writer

#: The emulator's default ``uci.encryption.secret`` (base64 of a 16-byte AES key); set your own.
DEFAULT_ENCRYPTION_SECRET = base64.b64encode(b"uci-emulator-key").decode()


def _cipher(secret_b64: str) -> Cipher:
    key = base64.b64decode(secret_b64)
    if len(key) not in (16, 24, 32):
        raise ValueError(
            f"encryption secret: must be base64 of a 16, 24 or 32 byte AES key, got {len(key)} bytes"
        )
    return Cipher(algorithms.AES(key), modes.ECB())


def encrypt_username(plain: str, secret_b64: str) -> str:
    """Encrypt as UCI does: AES/ECB/PKCS5Padding, base64."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain.encode("utf-8")) + padder.finalize()
    encryptor = _cipher(secret_b64).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def decrypt_username(encrypted: str | None, secret_b64: str) -> str | None:
    """Decrypt as the job's AESWrapper does; ``None`` when it cannot (the job writes it as empty)."""
    if not encrypted:
        return None
    try:
        raw = base64.b64decode(encrypted, validate=True)
        decryptor = _cipher(secret_b64).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


# -- ZipCrypto -------------------------------------------------------------------------------


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        value = n
        for _ in range(8):
            value = (value >> 1) ^ 0xEDB88320 if value & 1 else value >> 1
        table.append(value)
    return table


_CRC = _crc_table()


class _ZipCrypto:
    """Traditional PKWARE stream cipher (APPNOTE 6.1)."""

    def __init__(self, password: bytes) -> None:
        self.k0, self.k1, self.k2 = 0x12345678, 0x23456789, 0x34567890
        for byte in password:
            self._update(byte)

    def _update(self, byte: int) -> None:
        self.k0 = _CRC[(self.k0 ^ byte) & 0xFF] ^ (self.k0 >> 8)
        self.k1 = ((self.k1 + (self.k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        self.k2 = _CRC[(self.k2 ^ (self.k1 >> 24)) & 0xFF] ^ (self.k2 >> 8)

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray(len(data))
        crc, k0, k1, k2 = _CRC, self.k0, self.k1, self.k2
        for index, byte in enumerate(data):
            temp = (k2 | 2) & 0xFFFF
            out[index] = byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF)
            k0 = crc[(k0 ^ byte) & 0xFF] ^ (k0 >> 8)
            k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            k2 = crc[(k2 ^ (k1 >> 24)) & 0xFF] ^ (k2 >> 8)
        self.k0, self.k1, self.k2 = k0, k1, k2
        return bytes(out)


def _dos_time(stamp: float) -> tuple[int, int]:
    t = time.localtime(stamp)
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (
        t.tm_mon << 5
    ) | t.tm_mday


def zip_single_file(source: Path, target: Path, entry_name: str, password: str | None) -> None:
    """Zip ``source`` as one deflated entry; with a password, protect it with ZipCrypto.

    :raises ValueError: for an empty password, as zip4j refuses one.
    """
    if password is None:
        with (
            atomic_writer(target, field="zip") as handle,
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            archive.write(source, arcname=entry_name)
        return
    if password == "":
        raise ValueError("zip password: must not be empty")
    data = source.read_bytes()
    crc = zlib.crc32(data) & 0xFFFFFFFF
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = compressor.compress(data) + compressor.flush()
    cipher = _ZipCrypto(password.encode("utf-8"))
    header = cipher.encrypt(os.urandom(11) + bytes([crc >> 24]))
    payload = header + cipher.encrypt(compressed)
    name = entry_name.encode("utf-8")
    flags = 0x0001 | 0x0800  # encrypted, UTF-8 name
    dos_time, dos_date = _dos_time(source.stat().st_mtime)
    # what the local and the central header both say, from "compression method" to "file name length"
    common = (flags, 8, dos_time, dos_date, crc, len(payload), len(data), len(name))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, *common, 0) + name
    external = 0o100600 << 16  # unzipped owner-only
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, *common, 0, 0, 0, 0, external, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(payload), 0)
    with atomic_writer(target, field="zip") as handle:
        handle.write(local + payload + central + end)


#: What a sealed value starts with. A stored value without it is taken as plain text, so that a job store
#: whose values were written unsealed still opens.
SEAL_PREFIX = "sealed:v1:"
_SEAL_CONTEXT = b"uci-emulator job_request encryption_key"


def sealing_key(secret: str) -> bytes:
    """The AES-256 key values are sealed with in the job store, derived from the emulator's own secret."""
    return hmac.new(secret.encode("utf-8"), b"uci-emulator job store sealing key", hashlib.sha256).digest()


def seal(plain: str, key: bytes) -> str:
    """``plain`` encrypted and authenticated (AES-256-GCM), as text to store."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plain.encode("utf-8"), _SEAL_CONTEXT)
    return SEAL_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def unseal(stored: str, key: bytes) -> str:
    """The plain value of a :func:`seal`; a value stored unsealed is returned as it is.

    :raises ValueError: the value was sealed under another key (the emulator's secret changed).
    """
    if not stored.startswith(SEAL_PREFIX):
        return stored
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = base64.urlsafe_b64decode(stored[len(SEAL_PREFIX) :].encode("ascii"))
    try:
        return AESGCM(key).decrypt(data[:12], data[12:], _SEAL_CONTEXT).decode("utf-8")
    except InvalidTag:
        raise ValueError(
            "encryption_key: sealed under another key (the emulator's signing key changed since the "
            "request was submitted); submit the request again"
        ) from None
