"""Triggers of the Data Exhaust provider."""
