"""Transfers of the Data Exhaust provider: finished exhaust files to local or Azure Blob storage."""
