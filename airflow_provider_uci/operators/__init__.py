"""Operators of the Data Exhaust provider."""
