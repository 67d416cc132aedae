"""Model version names: ``v1``, ``v2``, ... (no zero, no leading zeros), numbered from 1."""

from __future__ import annotations

import re

VERSION_PATTERN = r"^v([1-9][0-9]*)$"
_VERSION_RE = re.compile(VERSION_PATTERN)


def version_number(name: str) -> int | None:
    """The number of a version name (``v12`` -> 12), or None if ``name`` is not one."""
    match = _VERSION_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def version_name(number: int) -> str:
    """The version name of a number (12 -> ``v12``)."""
    if number < 1:
        raise ValueError(f"version numbers start at 1, got {number}")
    return f"v{number}"
