"""Serverless automations for Cliniko third-party contacts."""
