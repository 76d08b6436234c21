"""Conversation analytics: exhausts as pandas DataFrames, warehouse views, an offline HTML report."""

from __future__ import annotations

from airflow_provider_uci.analytics.frames import (
    read_joined_exhaust,
    read_private_exhaust,
    read_response_exhaust,
)

__all__ = ["read_joined_exhaust", "read_private_exhaust", "read_response_exhaust"]
