"""Phone numbers stored ``hashed``: HMAC-SHA256 under a secret, so that a hash cannot be reversed by
trying every number.

A plain SHA-256 of a phone number is reversed in a CPU-hour (India's mobile numbers are about 10^10
values); keyed with a secret that is not stored beside the table, each guess needs the secret. The
same phone under the same secret gives the same hash, so tables loaded with one secret join on it.

The secret comes from the caller (the DAG's load reads the Airflow Variable
``uci_exhaust_phone_hash_secret`` or the warehouse connection's extra ``phone_hash_secret``; names
Airflow's masker hides), or from the environment variable :data:`SECRET_ENV` (``uci-exhaust load``,
the DataFrame readers). Without one, ``hashed`` is refused.

Each load records how it stored phones in ``<table>_loads.phone_numbers`` (:func:`phone_scheme`:
``plain``, ``none`` or ``hmac-sha256:<key id>``, the key id a fingerprint that does not reveal the
secret), and a load refuses to store them otherwise than the table already holds them
(``exhaust.warehouse.phones``).
"""

from __future__ import annotations

import hashlib
import hmac
import os

PHONE_MODES = ("plain", "hashed", "none")
#: The environment variable the secret is read from when none is given.
SECRET_ENV = "UCI_EXHAUST_PHONE_HASH_SECRET"
#: The shortest secret taken, in characters.
SHORTEST_SECRET = 16
#: How a load of the unkeyed SHA-256 of earlier versions is known in messages.
LEGACY_SCHEME = "sha256 (unkeyed)"


class PhoneHashSecretMissing(ValueError):
    """``phone_numbers=hashed`` was asked for without a usable secret."""


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`PHONE_MODES`, else raise naming ``phone_numbers``."""
    if mode not in PHONE_MODES:
        raise ValueError(f"phone_numbers: must be one of {', '.join(PHONE_MODES)}, got {mode!r}")
    return mode


def hash_secret(mode: str, secret: str | None = None) -> str | None:
    """The secret phones are hashed with: ``None`` unless ``mode`` is ``hashed``; then ``secret``, or the
    :data:`SECRET_ENV` variable's value.

    :raises PhoneHashSecretMissing: ``hashed`` with no secret, or one shorter than :data:`SHORTEST_SECRET`.
    """
    if check_mode(mode) != "hashed":
        return None
    return keyed_secret(secret)


def keyed_secret(secret: str | None = None) -> str:
    """The secret of a ``hashed`` load: ``secret``, or the :data:`SECRET_ENV` variable's value.

    :raises PhoneHashSecretMissing: no secret, or one shorter than :data:`SHORTEST_SECRET`.
    """
    secret = secret or os.environ.get(SECRET_ENV) or None
    if secret is None:
        raise PhoneHashSecretMissing(
            "phone_hash_secret: phone_numbers=hashed needs a secret to key the hash (an unkeyed hash of a phone "
            "number is reversed by trying every number): set the Airflow Variable uci_exhaust_phone_hash_secret "
            f"or the warehouse connection's extra phone_hash_secret, or {SECRET_ENV} for uci-exhaust; or store "
            "phone_numbers=none"
        )
    if len(secret) < SHORTEST_SECRET:
        raise PhoneHashSecretMissing(
            f"phone_hash_secret: must be at least {SHORTEST_SECRET} characters (a "
            f"random one, e.g. from 'openssl rand -hex 32'), got {len(secret)}"
        )
    return secret


def hash_phone(phone: str, secret: str) -> str:
    """The HMAC-SHA256 of ``phone`` under ``secret``, in hex."""
    return hmac.new(secret.encode("utf-8"), phone.encode("utf-8"), hashlib.sha256).hexdigest()


def key_id(secret: str) -> str:
    """A fingerprint of ``secret`` (16 hex digits) that tells two secrets apart and reveals neither."""
    return hmac.new(secret.encode("utf-8"), b"uci-exhaust phone hash key id", hashlib.sha256).hexdigest()[:16]


def phone_scheme(mode: str, secret: str | None) -> str:
    """How a load stores phones, as ``<table>_loads.phone_numbers`` records it."""
    if check_mode(mode) == "hashed":
        return f"hmac-sha256:{key_id(keyed_secret(secret))}"
    return mode
