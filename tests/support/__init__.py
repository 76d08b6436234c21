"""Helpers the test suite uses to start and reach real services."""
