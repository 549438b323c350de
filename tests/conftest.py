"""Shared fixtures: see tests/backend/conftest.py for the core per back end."""
