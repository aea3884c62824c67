"""The contacts change feed: Cliniko contacts polled by `updated_at`, published as events."""
