"""Fixtures for the emulator's own tests; other test folders can import the same `emulator` fixture."""

from emulator.pytest_plugin import emulator  # noqa: F401  (re-exported as a fixture)
