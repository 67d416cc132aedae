"""Errors raised by the model registry; every message is one line, fit for a CLI."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry operation failed."""


class UnknownVersion(RegistryError):
    """A version or alias that the registry does not have."""


class InvalidMetadata(RegistryError):
    """A version's ``metadata.json`` is missing or does not match the schema."""


class ModelRefused(RegistryError):
    """A version failed a load-time check and must not serve."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"model {version} refused: {reason}")
        self.version = version
        self.reason = reason
