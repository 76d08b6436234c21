"""Hooks of the Data Exhaust API."""
