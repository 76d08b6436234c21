"""Apache Airflow provider for Sunbird UCI's Data Exhaust service."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Return the provider's metadata for Airflow's provider manager."""
    return {
        "package-name": "airflow-provider-uci",
        "name": "Sunbird UCI Data Exhaust",
        "description": "Submit, await and load Sunbird UCI Data Exhaust requests.",
        "versions": [__version__],
    }
