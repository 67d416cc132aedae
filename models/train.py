"""Train a churn classifier, evaluate it on a holdout and register it.

Training data
-------------
Without ``--data``, training uses ``generate_training_set`` (synthetic customers with a
realistic churn signal). With ``--data FILE``, a ``.csv`` (UTF-8, header row) or a
``.parquet``/``.pq`` file is read; one row per customer, with these columns:

==================  =====================================  ==========================
column              values                                 notes
==================  =====================================  ==========================
plan                ``basic`` | ``standard`` | ``premium``
contract            ``monthly`` | ``annual``
tenure_months       integer >= 0
monthly_spend       number >= 0
page_views          integer >= 0                           counts over the same
complaints          integer >= 0                           observation period for
support_calls       integer >= 0                           every row
orders              integer >= 0
cancel_page_views   integer >= 0                           views of /cancel,
                                                           /account/cancel and below
churned             ``0`` | ``1`` (also ``true``/``false``)  the label
customer_id         any                                    optional, ignored
country             any                                    optional, ignored
==================  =====================================  ==========================

All required columns must be present and non-empty; other columns are ignored. The first
bad value stops training with an error naming the file, the line (CSV, header = line 1)
or the 0-based row index (Parquet), and the column. Both classes need at least
``MIN_ROWS_PER_CLASS`` rows.

Model and evaluation
--------------------
A scikit-learn ``HistGradientBoostingClassifier`` (early stopping, ``random_state`` =
seed) is fit on a stratified 80 % split; ROC AUC, log loss, Brier score, churn rate and a
calibration table are computed on the other 20 %. The metadata also records the author
(argument, else the login name; the CLI passes ``--author`` or ``MODEL_AUTHOR``), training
time, package versions and per-feature distributions of the training rows for drift checks.
Registering does not move any alias: with no champion set, the newest version serves.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import JsonValue
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from models.evaluation import feature_distributions, holdout_metrics
from models.features import FEATURE_NAMES, feature_matrix
from models.metadata import (
    ModelMetadata,
    SearchSummary,
    TrainingData,
    TrainingRecord,
    feature_specs,
)
from models.registry import ModelRegistry
from models.synthetic import generate_training_set
from models.training_data import LabelledProfiles, TrainingDataError, load_training_data

__all__ = [
    "DEFAULT_PARAMS",
    "PreparedData",
    "TrainingDataError",
    "TrainingSource",
    "prepare_data",
    "register_fitted",
    "train_and_register",
]

DEFAULT_CUSTOMERS = 20_000
DEFAULT_SEED = 7
HOLDOUT_FRACTION = 0.2
MIN_ROWS_PER_CLASS = 10
DEFAULT_PARAMS: dict[str, JsonValue] = {
    "learning_rate": 0.08,
    "max_iter": 300,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 20,
}


def resolve_author(author: str | None) -> str:
    """The author given (the CLI passes `--author`, else `MODEL_AUTHOR`), else the login name,
    else 'unknown'."""
    if author:
        return author
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name, e.g. a container uid without passwd entry
        return "unknown"


def build_estimator(
    seed: int, params: Mapping[str, object] | None
) -> HistGradientBoostingClassifier:
    """The classifier with DEFAULT_PARAMS overridden by ``params``."""
    merged: dict[str, object] = {**DEFAULT_PARAMS, **(params or {}), "random_state": seed}
    known = HistGradientBoostingClassifier().get_params()
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise ValueError(f"unknown hyperparameters: {', '.join(unknown)}")
    return HistGradientBoostingClassifier(**merged)


def _jsonable(params: Mapping[str, object]) -> dict[str, JsonValue]:
    # get_params() may hold numpy scalars or arrays (e.g. monotonic_cst); store plain JSON.
    def default(value: object) -> object:
        if isinstance(value, np.ndarray | np.generic):
            return value.tolist()
        return repr(value)

    result: dict[str, JsonValue] = json.loads(json.dumps(dict(params), default=default))
    return result


@dataclass(frozen=True)
class TrainingSource:
    """What a run trains on: the labelled file ``data`` or, without one, ``n_customers``
    synthetic customers. ``seed`` makes the run repeatable: it seeds the synthetic
    customers, the holdout split, the estimator and a hyperparameter search."""

    data: Path | None = None
    n_customers: int = DEFAULT_CUSTOMERS
    seed: int = DEFAULT_SEED


def _load(source: TrainingSource) -> LabelledProfiles:
    if source.data is not None:
        return load_training_data(Path(source.data))
    n_customers, seed = source.n_customers, source.seed
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    profiles, labels = generate_training_set(n_customers, seed)
    return LabelledProfiles(
        profiles=profiles,
        labels=labels,
        source=f"synthetic: generate_training_set(n={n_customers}, seed={seed})",
    )


def _check_classes(labelled: LabelledProfiles) -> None:
    counts = np.bincount(labelled.labels, minlength=2)
    if counts.min() < MIN_ROWS_PER_CLASS:
        raise TrainingDataError(
            labelled.source,
            f"need at least {MIN_ROWS_PER_CLASS} rows with churned=0 and with churned=1, "
            f"got {counts[0]} and {counts[1]}",
        )


@dataclass(frozen=True)
class PreparedData:
    """Validated training rows and their stratified train/holdout split."""

    labelled: LabelledProfiles
    x_train: np.ndarray
    x_holdout: np.ndarray
    y_train: np.ndarray
    y_holdout: np.ndarray


def prepare_data(source: TrainingSource) -> PreparedData:
    """Read the file (or generate synthetic customers), check both classes and split."""
    labelled = _load(source)
    _check_classes(labelled)
    matrix = feature_matrix(labelled.profiles)
    x_train, x_holdout, y_train, y_holdout = train_test_split(
        matrix,
        labelled.labels,
        test_size=HOLDOUT_FRACTION,
        stratify=labelled.labels,
        random_state=source.seed,
    )
    return PreparedData(labelled, x_train, x_holdout, y_train, y_holdout)


def register_fitted(
    registry: ModelRegistry,
    estimator: HistGradientBoostingClassifier,
    prepared: PreparedData,
    *,
    duration_s: float,
    author: str | None,
    search: SearchSummary | None = None,
) -> ModelMetadata:
    """Evaluate a fitted estimator on the holdout and register it with its full record."""
    positive = list(estimator.classes_).index(1)
    scores = estimator.predict_proba(prepared.x_holdout)[:, positive]
    labelled = prepared.labelled
    record = TrainingRecord(
        author=resolve_author(author),
        model_type=type(estimator).__name__,
        hyperparameters=_jsonable(estimator.get_params()),
        training_duration_s=round(duration_s, 3),
        training_data=TrainingData(
            source=labelled.source,
            rows=len(labelled.labels),
            train_rows=len(prepared.y_train),
            holdout_rows=len(prepared.y_holdout),
            sha256=labelled.sha256,
        ),
        features=feature_specs(),
        metrics=holdout_metrics(prepared.y_holdout, scores),
        feature_distributions=feature_distributions(prepared.x_train, FEATURE_NAMES),
        search=search,
    )
    return registry.register(estimator, record)


def train_and_register(
    registry: ModelRegistry,
    source: TrainingSource,
    *,
    author: str | None = None,
    params: Mapping[str, object] | None = None,
) -> ModelMetadata:
    """Train on ``source``, evaluate on a holdout and register.

    Raises TrainingDataError for unusable data, ValueError for bad arguments and
    RegistryError if the model cannot be stored.
    """
    estimator = build_estimator(source.seed, params)
    prepared = prepare_data(source)
    started = time.perf_counter()
    estimator.fit(prepared.x_train, prepared.y_train)
    duration = time.perf_counter() - started
    return register_fitted(registry, estimator, prepared, duration_s=duration, author=author)
