"""A faithful local implementation of Sunbird's Data Exhaust service (API, job store, storage)."""
