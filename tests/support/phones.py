"""The secret the tests key ``hashed`` phone numbers with (set for every test by ``tests/conftest.py``; a test of
its absence removes it), and a phone's hash under it, computed here independently of the loader."""

from __future__ import annotations

import hashlib
import hmac

PHONE_HASH_SECRET = "tests-phone-hash-secret-7d41c0e2"


def hashed(phone: str, secret: str = PHONE_HASH_SECRET) -> str:
    """HMAC-SHA256 of ``phone`` under ``secret``, in hex."""
    return hmac.new(secret.encode("utf-8"), phone.encode("utf-8"), hashlib.sha256).hexdigest()
