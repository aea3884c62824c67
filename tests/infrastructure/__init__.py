"""Checks of the tools around the code: template, packaging, samconfig, the runtime Python,
the spec and its generated client, the lock files."""
