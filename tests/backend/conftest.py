"""The per-back-end fixtures live in tests/conftest.py, shared with tests/api."""

from tests.conftest import PASSWORD, TEST_SECRET, Backend, Team

__all__ = ["PASSWORD", "TEST_SECRET", "Backend", "Team"]
