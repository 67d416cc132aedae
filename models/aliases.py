"""``aliases.json``: which version is champion or challenger, and what each alias used to be.

The file looks like ``{"champion": "v3", "challenger": null, "history": {"champion":
["v1", "v2"]}}``; ``history`` lists earlier holders of an alias, oldest first, so a
rollback can restore the previous champion. Updates are read-modify-write under an
exclusive file lock and land with an atomic replace, so concurrent CLI calls and a
serving process reading the file never see a torn or lost update.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from models.fsutil import atomic_write

# The aliases are the serving roles of the event contract (a prediction record's
# `model_role`): each names the version that plays it.
from topics.events import CHALLENGER, CHAMPION, ROLES, Role

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: updates are then not serialised
    fcntl = None  # type: ignore[assignment]

# The aliases are the serving roles of the event contract (a prediction record's
# `model_role`): each names the version that plays that role.
__all__ = ["CHALLENGER", "CHAMPION", "ROLES", "Role"]

# Enough to walk back through any realistic sequence of promotions.
MAX_HISTORY = 50


class AliasFileError(Exception):
    """``aliases.json`` exists but is not valid."""


class AliasState(BaseModel):
    """The contents of ``aliases.json``."""

    champion: str | None = None
    challenger: str | None = None
    history: dict[str, list[str]] = Field(default_factory=dict)

    def get(self, alias: Role) -> str | None:
        """The version an alias points to, if set."""
        value = getattr(self, alias)
        return value if isinstance(value, str) else None

    def assign(self, alias: Role, version: str | None) -> None:
        """Point an alias at ``version`` (or unset it), remembering the previous holder."""
        previous = self.get(alias)
        if previous == version:
            return
        if previous is not None:
            history = self.history.setdefault(alias, [])
            history.append(previous)
            del history[:-MAX_HISTORY]
        setattr(self, alias, version)


def check_alias(alias: str) -> None:
    """Raise ``ValueError`` for a name that is not one of ``ROLES``."""
    if alias not in ROLES:
        raise ValueError(f"unknown alias {alias!r} (expected one of {', '.join(ROLES)})")


class AliasStore:
    """Reads and updates one ``aliases.json`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(".aliases.lock")

    def read(self) -> AliasState:
        """The current state; an absent file means no aliases."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AliasState()
        try:
            return AliasState.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "file"
            raise AliasFileError(f"{self.path} is invalid: {where}: {first['msg']}") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def update(self, change: Callable[[AliasState], None]) -> AliasState:
        """Apply ``change`` to the current state under the lock and persist it atomically."""
        with self._locked():
            state = self.read()
            change(state)
            atomic_write(self.path, state.model_dump_json(indent=2).encode() + b"\n")
            return state
