"""Sensors of the Data Exhaust provider."""
