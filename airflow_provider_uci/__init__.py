"""Apache Airflow provider for Sunbird UCI's Data Exhaust service."""

from __future__ import annotations

import copy
from typing import Any

__version__ = "0.1.0"


#: The provider's metadata, as Airflow's provider manager reads it.
PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-provider-uci",
    "name": "Sunbird UCI Data Exhaust",
    "description": "Submit, await and load Sunbird UCI Data Exhaust requests (response and private exhausts).",
    "versions": [__version__],
    "integrations": [
        {
            "integration-name": "Sunbird UCI Data Exhaust",
            "external-doc-url": "https://uci.sunbird.org/",
            "tags": ["service"],
        },
    ],
    "hooks": [
        {
            "integration-name": "Sunbird UCI Data Exhaust",
            "python-modules": ["airflow_provider_uci.hooks.exhaust"],
        }
    ],
    "operators": [
        {
            "integration-name": "Sunbird UCI Data Exhaust",
            "python-modules": [
                "airflow_provider_uci.operators.exhaust",
                "airflow_provider_uci.operators.load",
                "airflow_provider_uci.operators.to_warehouse",
            ],
        }
    ],
    "sensors": [
        {
            "integration-name": "Sunbird UCI Data Exhaust",
            "python-modules": ["airflow_provider_uci.sensors.exhaust"],
        }
    ],
    "triggers": [
        {
            "integration-name": "Sunbird UCI Data Exhaust",
            "python-modules": ["airflow_provider_uci.triggers.exhaust"],
        }
    ],
    "connection-types": [
        {
            "hook-class-name": "airflow_provider_uci.hooks.exhaust.UciExhaustHook",
            "hook-name": "Sunbird UCI Data Exhaust",
            "connection-type": "uci_exhaust",
            "conn-fields": {
                "channel_id": {
                    "label": "Channel ID",
                    "description": "The bots' owner org id, sent as X-Channel-ID.",
                    "schema": {"type": ["string", "null"]},
                },
                "requested_by": {
                    "label": "Requested by",
                    "description": "Stored with each request as requestedBy.",
                    "schema": {"type": ["string", "null"], "maxLength": 50},
                },
                "zip_password": {
                    "label": "Zip password (encryption key)",
                    "description": "Password of the private exhaust zip (the request's encryptionKey, "
                    "ZipCrypto); leave empty for none. Airflow shows it as ***.",
                    "schema": {"type": ["string", "null"], "format": "password", "maxLength": 50},
                },
                "timeout": {
                    "label": "Timeout (seconds)",
                    "description": "How long to wait to connect and for each answer (default 10 and 45 s); "
                    "the extra JSON may give [connect, read].",
                    "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                },
                "verify": {
                    "label": "Verify TLS certificates",
                    "description": "Check the service's certificate (on unless unticked); the extra JSON may "
                    "name a CA bundle file instead.",
                    "schema": {"type": ["boolean", "null"]},
                },
            },
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port", "login"],
                "relabeling": {"host": "API base URL", "password": "API key"},
                "placeholders": {
                    "host": "https://<host>/api",
                    "password": "the API key (a JWT)",
                    "extra": '{"proxies": {"https": "http://proxy:3128"}}',
                },
            },
        }
    ],
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata for Airflow's provider manager (a copy it may keep)."""
    return copy.deepcopy(PROVIDER_INFO)
