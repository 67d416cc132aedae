"""Load a model artifact and verify it may serve, or refuse it with a precise reason.

Checks, in order: the artifact's sha256 matches its metadata, joblib can unpickle it, the
metadata's features equal ``FEATURE_NAMES``, the estimator has ``predict_proba``, knows
the churned class 1 and takes ``len(FEATURE_NAMES)`` inputs. (Parsing the metadata, the
first check, is the registry's job.)
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

from models.errors import ModelRefused
from models.features import FEATURE_NAMES
from models.fsutil import sha256_file
from models.metadata import ModelMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded model version."""

    version: str
    metadata: ModelMetadata
    estimator: Any
    positive_index: int = 1  # column of predict_proba holding the churned class

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Churn probability per feature row (``FEATURE_NAMES`` order) as a 1-D float array."""
        matrix = np.asarray(rows, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        probabilities = self.estimator.predict_proba(matrix)
        return np.asarray(probabilities[:, self.positive_index], dtype=np.float64)


def pin_inference_threads() -> None:
    """Give every native thread pool loaded so far (BLAS, OpenMP) one thread, for calls
    made from the calling thread.

    Call it on the thread that scores, after a model is loaded: threadpoolctl reaches only
    pools already loaded, scikit-learn's OpenMP runtime loads with the estimator's module,
    and OpenMP keeps its thread count per calling thread. Scoring micro-batches, a second
    OpenMP thread only adds a barrier to wait at; on a busy two-core machine it made a
    20-row `predict_proba` of the default model cost 40-80 ms instead of 2-3 ms, and
    doubled a worker's CPU per event.
    """
    threadpool_limits(limits=1)


def feature_mismatch(names: tuple[str, ...]) -> str | None:
    """Describe how ``names`` differ from ``FEATURE_NAMES``, or None if they match."""
    if names == FEATURE_NAMES:
        return None
    missing = [name for name in FEATURE_NAMES if name not in names]
    unexpected = [name for name in names if name not in FEATURE_NAMES]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        return "model features do not match FEATURE_NAMES: " + ", ".join(parts)
    if len(names) != len(FEATURE_NAMES):
        return f"model lists {len(names)} features, FEATURE_NAMES has {len(FEATURE_NAMES)}"
    position = next(i for i, (a, b) in enumerate(zip(names, FEATURE_NAMES, strict=True)) if a != b)
    return (
        f"model feature order differs from FEATURE_NAMES at position {position}: "
        f"{names[position]!r} instead of {FEATURE_NAMES[position]!r}"
    )


def _unpickle(version: str, path: Path) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator = joblib.load(path)
        except Exception as exc:  # a corrupt pickle can raise nearly anything
            raise ModelRefused(
                version, f"artifact could not be unpickled: {type(exc).__name__}: {exc}"
            ) from None
    for warning in caught:
        # e.g. scikit-learn's InconsistentVersionWarning: serve, but say so.
        log.warning("model %s: %s", version, warning.message)
    return estimator


def _positive_index(version: str, estimator: Any) -> int:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise ModelRefused(version, "estimator is not fitted (no classes_)")
    labels = [int(label) if isinstance(label, np.integer | int) else label for label in classes]
    if 1 not in labels:
        raise ModelRefused(version, f"estimator classes {labels} do not include churned=1")
    n_inputs = getattr(estimator, "n_features_in_", len(FEATURE_NAMES))
    if n_inputs != len(FEATURE_NAMES):
        raise ModelRefused(
            version, f"estimator expects {n_inputs} inputs, FEATURE_NAMES has {len(FEATURE_NAMES)}"
        )
    return labels.index(1)


def load_verified(version_dir: Path, meta: ModelMetadata) -> LoadedModel:
    """Load the artifact described by ``meta`` from ``version_dir``; ModelRefused on failure."""
    version = meta.version
    artifact_path = version_dir / meta.artifact.file
    # The file name comes from metadata: never follow it out of the version directory.
    if artifact_path.parent != version_dir or not artifact_path.is_file():
        raise ModelRefused(version, f"artifact {meta.artifact.file} is missing")
    actual = sha256_file(artifact_path)
    if actual != meta.artifact.sha256:
        raise ModelRefused(
            version,
            f"artifact sha256 mismatch: metadata has {meta.artifact.sha256[:12]}..., "
            f"file has {actual[:12]}...",
        )
    estimator = _unpickle(version, artifact_path)
    mismatch = feature_mismatch(meta.feature_names)
    if mismatch:
        raise ModelRefused(version, mismatch)
    if not callable(getattr(estimator, "predict_proba", None)):
        raise ModelRefused(
            version, f"{type(estimator).__name__} has no predict_proba (not a classifier)"
        )
    return LoadedModel(
        version=version,
        metadata=meta,
        estimator=estimator,
        positive_index=_positive_index(version, estimator),
    )
