"""A folder model registry: the source of truth for which model serves.

Layout under the root (env ``MODEL_REGISTRY``, default ``./model-registry``)::

    versions/v1/model.joblib      the pickled estimator
    versions/v1/metadata.json     ModelMetadata, including the artifact's sha256
    aliases.json                  {"champion": "v3", "challenger": null, "history": {...}}
    .staging/                     registrations in progress (safe to delete when idle)

A version directory appears in ``versions/`` only by an atomic rename of a complete,
fsync'd staging directory, so readers never see a half-written version. The serving
version is the champion alias if set, else the latest version.

Artifacts are pickles: the checksum catches corruption, not tampering, so a registry must
only ever be writable by people trusted to run code on the serving hosts.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib
from pydantic import ValidationError

from models.aliases import (
    CHALLENGER,
    CHAMPION,
    ROLES,
    AliasFileError,
    AliasState,
    AliasStore,
    Role,
    check_alias,
)
from models.errors import InvalidMetadata, ModelRefused, RegistryError, UnknownVersion
from models.fsutil import fsync_dir, sha256_file, write_durably
from models.loading import LoadedModel, feature_mismatch, load_verified
from models.metadata import Artifact, ModelMetadata, TrainingRecord, package_versions
from models.versions import version_name, version_number

__all__ = [
    "InvalidMetadata",
    "LoadedModel",
    "ModelRefused",
    "ModelRegistry",
    "RegistryError",
    "ServingVersions",
    "UnknownVersion",
]

log = logging.getLogger(__name__)

ARTIFACT_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
LATEST = "latest"

# Each failed rename means another registration took that number, so this bound is only
# reached if something keeps creating version directories behind our back.
_MAX_REGISTER_ATTEMPTS = 1000


@dataclass(frozen=True)
class ServingVersions:
    """Which versions serve: the champion alias, else the newest version (None for an empty
    registry), and the challenger alias, if set."""

    champion: str | None
    challenger: str | None
    champion_is_alias: bool  # False: no champion alias, so the newest version serves


class ModelRegistry:
    """A model registry rooted at a directory (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._versions_dir = self.root / "versions"
        self._staging_dir = self.root / ".staging"
        self._aliases = AliasStore(self.root / "aliases.json")

    # ----------------------------------------------------------------- versions

    def versions(self) -> list[str]:
        """Registered versions in numeric order (``v2`` before ``v10``)."""
        try:
            entries = list(self._versions_dir.iterdir())
        except FileNotFoundError:
            return []
        numbered = [
            (number, entry.name)
            for entry in entries
            if (number := version_number(entry.name)) is not None and entry.is_dir()
        ]
        return [name for _, name in sorted(numbered)]

    def latest_version(self) -> str | None:
        """The highest registered version, or None for an empty registry."""
        versions = self.versions()
        return versions[-1] if versions else None

    def _version_dir(self, version: str) -> Path:
        """The directory of an existing version; raises UnknownVersion otherwise."""
        if version_number(version) is not None:
            path = self._versions_dir / version
            if path.is_dir():
                return path
        latest = self.latest_version()
        known = f"latest is {latest}" if latest else "the registry is empty"
        raise UnknownVersion(f"unknown model version {version!r} in {self.root} ({known})")

    def metadata(self, version: str) -> ModelMetadata:
        """The metadata of a version; UnknownVersion or InvalidMetadata on failure."""
        path = self._version_dir(version) / METADATA_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise InvalidMetadata(f"{version}: {METADATA_FILE} is missing") from None
        try:
            meta = ModelMetadata.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise InvalidMetadata(
                f"{version}: {METADATA_FILE} is invalid at {where}: {first['msg']}"
            ) from None
        if meta.version != version:
            raise InvalidMetadata(f"{version}: {METADATA_FILE} says version {meta.version}")
        return meta

    # ------------------------------------------------------------- registration

    def _next_version(self) -> str:
        try:
            names = [entry.name for entry in self._versions_dir.iterdir()]
        except FileNotFoundError:
            names = []
        numbers = [n for name in names if (n := version_number(name)) is not None]
        return version_name(max(numbers, default=0) + 1)

    def register(self, estimator: object, record: TrainingRecord) -> ModelMetadata:
        """Store a fitted classifier and its training record as the next version.

        The version is written to a staging directory, fsync'd and renamed into
        ``versions/`` in one step; if another registration takes the number first, the
        next number is used. On any failure nothing appears under ``versions/``.
        """
        if not callable(getattr(estimator, "predict_proba", None)):
            raise RegistryError(
                f"cannot register {type(estimator).__name__}: it has no predict_proba"
            )
        mismatch = feature_mismatch(tuple(feature.name for feature in record.features))
        if mismatch:
            raise RegistryError(f"cannot register: {mismatch}")
        try:
            self._staging_dir.mkdir(parents=True, exist_ok=True)
            self._versions_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="register-", dir=self._staging_dir))
            try:
                artifact = self._write_artifact(estimator, staging / ARTIFACT_FILE)
                return self._publish(staging, record, artifact)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:  # unwritable root, full disk, ...
            raise RegistryError(f"cannot write to registry {self.root}: {exc}") from exc

    @staticmethod
    def _write_artifact(estimator: object, path: Path) -> Artifact:
        try:
            with path.open("wb") as fh:
                joblib.dump(estimator, fh)
                fh.flush()
                os.fsync(fh.fileno())
        except Exception as exc:  # pickling raises a zoo of types: report them all alike
            raise RegistryError(
                f"cannot serialise {type(estimator).__name__}: {type(exc).__name__}: {exc}"
            ) from exc
        return Artifact(file=ARTIFACT_FILE, sha256=sha256_file(path))

    def _publish(self, staging: Path, record: TrainingRecord, artifact: Artifact) -> ModelMetadata:
        packages = package_versions()
        for _ in range(_MAX_REGISTER_ATTEMPTS):
            version = self._next_version()
            meta = ModelMetadata(
                **{name: getattr(record, name) for name in TrainingRecord.model_fields},
                version=version,
                created_at=datetime.now(UTC),
                packages=packages,
                artifact=artifact,
            )
            write_durably(staging / METADATA_FILE, meta.to_json().encode())
            fsync_dir(staging)
            try:
                os.rename(staging, self._versions_dir / version)
            except OSError as exc:
                # Linux reports a non-empty target as ENOTEMPTY, others as EEXIST.
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
            fsync_dir(self._versions_dir)
            log.info("registered model %s in %s", version, self.root)
            return meta
        raise RegistryError(f"could not allocate a version in {self._versions_dir}")

    # ------------------------------------------------------------------ aliases

    def _alias_state(self) -> AliasState:
        try:
            return self._aliases.read()
        except AliasFileError as exc:
            raise RegistryError(str(exc)) from None

    def _update_aliases(self, change: Callable[[AliasState], None]) -> AliasState:
        try:
            return self._aliases.update(change)
        except AliasFileError as exc:
            raise RegistryError(str(exc)) from None
        except OSError as exc:
            raise RegistryError(f"cannot update aliases in {self.root}: {exc}") from exc

    def aliases(self) -> dict[str, str]:
        """Set aliases only, e.g. ``{"champion": "v3"}``."""
        state = self._alias_state()
        return {alias: version for alias in ROLES if (version := state.get(alias))}

    def set_alias(self, alias: Role, version: str) -> None:
        """Point an alias at an existing version, remembering its previous holder."""
        check_alias(alias)
        self._version_dir(version)
        self._update_aliases(lambda state: state.assign(alias, version))
        log.info("alias %s -> %s in %s", alias, version, self.root)

    def remove_alias(self, alias: Role) -> None:
        """Unset an alias (its holder goes into the history, so a rollback can restore it)."""
        check_alias(alias)
        self._update_aliases(lambda state: state.assign(alias, None))

    def rollback(self) -> str:
        """Point champion back at the previous champion and return that version."""
        restored: list[str] = []

        def change(state: AliasState) -> None:
            history = state.history.get(CHAMPION, [])
            if not history:
                raise RegistryError("no previous champion to roll back to")
            previous = history.pop()
            self._version_dir(previous)
            state.champion = previous
            restored.append(previous)

        self._update_aliases(change)
        log.info("champion rolled back to %s in %s", restored[0], self.root)
        return restored[0]

    def resolve(self, ref: str) -> str:
        """Turn an alias, ``latest`` or a version into an existing version."""
        if ref in ROLES:
            version = self.aliases().get(ref)
            if version is None:
                raise UnknownVersion(f"alias {ref!r} is not set in {self.root}")
            return version
        if ref == LATEST:
            latest = self.latest_version()
            if latest is None:
                raise UnknownVersion(f"no models registered in {self.root}")
            return latest
        self._version_dir(ref)
        return ref

    def serving_versions(self) -> ServingVersions:
        """The versions the serving roles take, from one read of the aliases."""
        aliases = self.aliases()
        champion = aliases.get(CHAMPION)
        return ServingVersions(
            champion=champion or self.latest_version(),
            challenger=aliases.get(CHALLENGER),
            champion_is_alias=champion is not None,
        )

    def serving_version(self) -> str | None:
        """The champion if set, else the latest version, else None."""
        return self.serving_versions().champion

    # ------------------------------------------------------------------ loading

    def load(self, version: str) -> LoadedModel:
        """Load and verify a version; any failed check raises ModelRefused with the reason.

        Checks, in order: metadata parses, then everything ``models.loading`` verifies
        (artifact sha256, unpickling, features == FEATURE_NAMES, predict_proba, class 1).
        """
        try:
            version_dir = self._version_dir(version)
        except UnknownVersion as exc:
            # Serving asks for what an alias names; a dangling alias is a refusal too.
            raise ModelRefused(version, str(exc)) from None
        try:
            meta = self.metadata(version)
        except InvalidMetadata as exc:
            raise ModelRefused(version, str(exc).removeprefix(f"{version}: ")) from None
        return load_verified(version_dir, meta)
