"""Write the compose stack's secrets and connections into one folder (the airflow-secrets volume).

airflow-init runs it (through ``write-secrets.sh``) before ``airflow db migrate``. Every value comes
from the environment (docker compose passes the values of ``.env``); nothing secret is ever taken
from or put on a command line, and nothing secret is printed.

Secrets: taken from their variable, or, when it is empty, generated the first time and kept, so that
every component and every restart reads the same value (Airflow through ``AIRFLOW__..._CMD``
settings that ``cat`` these files).

  file                    variable (.env)             what, and the rule a given value must meet
  jwt_secret              AIRFLOW_JWT_SECRET          [api_auth] jwt_secret; at least 32 characters
  secret_key              AIRFLOW_SECRET_KEY          [api] secret_key; at least 32 characters
  fernet_key              AIRFLOW_FERNET_KEY          [core] fernet_key; Fernet keys (32 bytes in URL-safe
                                                      base64), comma-separated while rotating
  passwords.json          AIRFLOW_ADMIN_PASSWORD      the login "admin"; at least 12 characters
  emulator_admin_token    UCI_EMULATOR_ADMIN_TOKEN    the emulator's admin routes; at least 16 characters
  emulator_admin_header   (from the token)            the token as a curl header file, for the healthcheck

Connections (``connections.json``, read by Airflow's LocalFilesystemBackend), rewritten at every
start from the environment, JSON-encoded whatever the values hold:

  uci_exhaust_default     UCI_EXHAUST_API_URL, UCI_EXHAUST_API_KEY, UCI_EXHAUST_CHANNEL_ID,
                          UCI_EXHAUST_REQUESTED_BY, UCI_EXHAUST_ZIP_PASSWORD; without a URL, the
                          emulator and its development key, channel and zip password; with a URL
                          (a real service), the key, channel and zip password must be given.
                          UCI_EXHAUST_ENCRYPTION_KEY, the zip password's old name, is still read,
                          with a DeprecationWarning naming the new one
  uci_warehouse           UCI_WAREHOUSE_URL; without it, the warehouse database beside Airflow's
  wasb_default            AZURE_STORAGE_CONNECTION_STRING; without it, Azurite

A refused value stops with one line naming the variable and the rule, before any file is written.
UCI_SECRETS_DIR is the folder (default /opt/airflow/secrets); UCI_SECRETS_OWNER (user:group) is given
the files when run as root.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = "change-me"
EMULATOR_API = "http://uci-exhaust-emulator:9000/api"
#: The emulator's own settings: public, and only ever sent to the emulator.
EMULATOR_DEFAULTS = {
    "UCI_EXHAUST_API_KEY": "dev-key",
    "UCI_EXHAUST_CHANNEL_ID": "dev-channel",
    "UCI_EXHAUST_ZIP_PASSWORD": "compose-zip-key",
}
#: Variables renamed: the old name still read, with a DeprecationWarning.
RENAMED = {"UCI_EXHAUST_ENCRYPTION_KEY": "UCI_EXHAUST_ZIP_PASSWORD"}
WAREHOUSE = "postgresql://airflow:airflow@postgres:5432/warehouse"
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://azurite:10000/devstoreaccount1;"
)
GENERATE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(64))'"
GENERATE_FERNET = "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class Refused(Exception):
    """A value of .env that cannot be used; the message is one line naming the variable and the rule."""


def at_least(length: int, how: str = GENERATE_TOKEN) -> Callable[[str], str | None]:
    def rule(value: str) -> str | None:
        if len(value) < length:
            return f"is {len(value)} characters long; it must be at least {length} (generate one with {how})"
        return None

    return rule


def fernet_keys(value: str) -> str | None:
    for key in value.split(","):
        try:
            raw = base64.b64decode(key.strip().translate(str.maketrans("-_", "+/")), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            return (
                "is not a Fernet key (32 bytes in URL-safe base64, 44 characters; several comma-separated "
                f"while rotating); generate one with {GENERATE_FERNET}"
            )
    return None


@dataclass(frozen=True)
class Secret:
    file: str
    variable: str
    generate: Callable[[], str]
    rule: Callable[[str], str | None]
    render: Callable[[str], str] = str


SECRETS = (
    Secret("jwt_secret", "AIRFLOW_JWT_SECRET", lambda: secrets.token_urlsafe(64), at_least(32)),
    Secret("secret_key", "AIRFLOW_SECRET_KEY", lambda: secrets.token_urlsafe(64), at_least(32)),
    Secret(
        "fernet_key",
        "AIRFLOW_FERNET_KEY",
        lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
        fernet_keys,
    ),
    Secret(
        "passwords.json",
        "AIRFLOW_ADMIN_PASSWORD",
        lambda: secrets.token_urlsafe(18),
        at_least(12),
        lambda value: json.dumps({"admin": value}),
    ),
    Secret(
        "emulator_admin_token", "UCI_EMULATOR_ADMIN_TOKEN", lambda: secrets.token_urlsafe(64), at_least(16)
    ),
)


def given(variable: str) -> str:
    """The variable's value (or its old name's, with a warning); a placeholder of .env.example is refused."""
    value = os.environ.get(variable, "")
    for old, new in RENAMED.items():
        if new == variable and os.environ.get(old):
            warnings.warn(f"{old} is deprecated; name it {new} in .env", DeprecationWarning, stacklevel=2)
            if value and value != os.environ[old]:
                raise Refused(f"{new} and {old} (its old name) are both set, to different values; keep {new}")
            value, variable = os.environ[old], old
    if value.startswith(PLACEHOLDER):
        raise Refused(
            f"{variable} in .env is still the placeholder from .env.example; replace it (.env.example "
            "says how to generate one) or leave it empty to have one generated"
        )
    return value


def check_secrets() -> dict[str, str]:
    """The given secrets, by file, once every one has passed its rule."""
    values = {}
    for secret in SECRETS:
        value = given(secret.variable)
        if value:
            problem = secret.rule(value)
            if problem:
                raise Refused(f"{secret.variable} in .env {problem}")
            values[secret.file] = value
    return values


def connections() -> dict[str, object]:
    """The stack's connections, in the LocalFilesystemBackend's JSON form."""
    url = given("UCI_EXHAUST_API_URL")
    service = {}
    for variable, default in EMULATOR_DEFAULTS.items():
        value = given(variable)
        if url and not value:
            raise Refused(
                f"{variable} must be set in .env when UCI_EXHAUST_API_URL names a service ({url}): "
                "the emulator's public development value is never sent elsewhere"
            )
        service[variable] = value or default
    return {
        "uci_exhaust_default": {
            "conn_type": "uci_exhaust",
            "host": url or EMULATOR_API,
            "password": service["UCI_EXHAUST_API_KEY"],
            "extra_dejson": {
                "channel_id": service["UCI_EXHAUST_CHANNEL_ID"],
                "requested_by": given("UCI_EXHAUST_REQUESTED_BY") or "airflow",
                "zip_password": service["UCI_EXHAUST_ZIP_PASSWORD"],
            },
        },
        "uci_warehouse": given("UCI_WAREHOUSE_URL") or WAREHOUSE,
        "wasb_default": {
            "conn_type": "wasb",
            "extra_dejson": {"connection_string": given("AZURE_STORAGE_CONNECTION_STRING") or AZURITE},
        },
    }


def write(folder: Path, name: str, text: str) -> None:
    """Replace ``folder/name`` by ``text`` at once (a reader sees the old file or the new), mode 0600."""
    handle, scratch = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(scratch, folder / name)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def numeric(name: str) -> str | int | None:
    """A user or group for :func:`shutil.chown`: a number as a number, a name as a name."""
    return int(name) if name.isdigit() else name or None


def main() -> int:
    warnings.simplefilter("default", DeprecationWarning)
    warnings.formatwarning = lambda message, category, *_: f"write-secrets: {category.__name__}: {message}\n"
    folder = Path(os.environ.get("UCI_SECRETS_DIR") or "/opt/airflow/secrets")
    owner = os.environ.get("UCI_SECRETS_OWNER", "")
    os.umask(0o077)
    try:
        values = check_secrets()
        wired = connections()
    except Refused as refused:
        print(f"write-secrets: {refused}", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    for secret in SECRETS:
        path = folder / secret.file
        if secret.file in values:
            text = secret.render(values[secret.file])
            if path.is_file() and path.read_text(encoding="utf-8") not in ("", text):
                # the services read their secrets when they start: those still running keep the old one
                print(
                    f"write-secrets: {secret.file} changed (from {secret.variable}); recreate the running "
                    "services: docker compose up -d --force-recreate"
                )
            else:
                print(f"write-secrets: {secret.file} from {secret.variable}")
            write(folder, secret.file, text)
        elif path.is_file() and path.stat().st_size:
            print(f"write-secrets: {secret.file} kept")
        else:
            print(f"write-secrets: {secret.file} generated")
            write(folder, secret.file, secret.render(secret.generate()))
    token = (folder / "emulator_admin_token").read_text(encoding="utf-8")
    write(folder, "emulator_admin_header", f"X-Admin-Token: {token}\n")
    write(folder, "connections.json", json.dumps(wired, indent=2) + "\n")
    where = "the service of UCI_EXHAUST_API_URL" if os.environ.get("UCI_EXHAUST_API_URL") else "the emulator"
    print(f"write-secrets: connections.json written (uci_exhaust_default: {where})")
    if owner:
        user, _, group = owner.partition(":")
        for path in (folder, *folder.iterdir()):
            shutil.chown(path, numeric(user), numeric(group))
    return 0


if __name__ == "__main__":
    sys.exit(main())
