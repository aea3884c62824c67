"""Scheduled cleanup: rule-based runs that archive stale or test contacts, dry run by default."""
