"""Data code with no Airflow import: Spark's CSV dialect, and (later) reading, joining and loading exhausts."""
