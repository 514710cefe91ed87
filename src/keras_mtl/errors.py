"""The library's own error types."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config mistake, in one sentence (the CLI exits with code 2)."""
