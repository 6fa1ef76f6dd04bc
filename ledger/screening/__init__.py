"""Restricted-party screening: list versions, normalised identity, matching, clearances."""
