"""The schema of a registered model's ``metadata.json``.

``TrainingRecord`` is what the trainer knows about a model (who, how, on what data, how
well); ``ModelMetadata`` adds what the registry assigns at registration (version, time,
runtime package versions and the artifact checksum).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata as importlib_metadata
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from models.features import FEATURE_NAMES, FEATURE_TYPES, FeatureType
from models.versions import VERSION_PATTERN

REQUIRED_PACKAGES: tuple[str, ...] = ("python", "scikit-learn", "numpy", "joblib")

Version = Annotated[str, Field(pattern=VERSION_PATTERN)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    # Unknown keys are ignored so a registry written by a newer release still lists.
    model_config = ConfigDict(frozen=True, extra="ignore")


class FeatureSpec(_Frozen):
    """One model input, in the order the model expects it."""

    name: str
    type: FeatureType


def feature_specs() -> list[FeatureSpec]:
    """This release's model inputs: ``FEATURE_NAMES`` in order, with their types."""
    return [FeatureSpec(name=name, type=FEATURE_TYPES[name]) for name in FEATURE_NAMES]


class TrainingData(_Frozen):
    """Where the training rows came from."""

    source: str
    rows: int = Field(ge=0, description="rows read, before the holdout split")
    train_rows: int = Field(ge=0)
    holdout_rows: int = Field(ge=0)
    sha256: str | None = Field(default=None, description="checksum of the data file, if any")


class CalibrationBin(_Frozen):
    """Reliability of predicted probabilities in one probability bin of the holdout."""

    bin_lower: Probability
    bin_upper: Probability
    mean_predicted: Probability
    fraction_positive: Probability
    count: int = Field(gt=0)


class Metrics(_Frozen):
    """Holdout metrics; ``positive_rate`` is the share of churned rows in the holdout."""

    roc_auc: Probability
    log_loss: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    brier: Probability
    positive_rate: Probability
    calibration: list[CalibrationBin]


class Quantiles(_Frozen):
    """Quantiles of one feature over the training rows."""

    p01: Finite
    p05: Finite
    p25: Finite
    p50: Finite
    p75: Finite
    p95: Finite
    p99: Finite


class FeatureDistribution(_Frozen):
    """Summary of one feature over the training rows, the baseline for drift checks."""

    mean: Finite
    std: Finite
    min: Finite
    max: Finite
    quantiles: Quantiles


class Artifact(_Frozen):
    """The serialised estimator next to ``metadata.json``."""

    file: str = "model.joblib"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SearchTrial(_Frozen):
    """One configuration tried by a hyperparameter search, scored on the validation split."""

    params: dict[str, JsonValue]
    validation_log_loss: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    validation_roc_auc: Probability
    fit_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class SearchSummary(_Frozen):
    """How a hyperparameter search chose this model's hyperparameters.

    Trials are fit on the training split minus a validation part and ranked by validation
    log loss; the holdout in ``metrics`` is never seen by the search.
    """

    strategy: str = "random"
    metric: str = "validation_log_loss"
    trial_budget: int | None = Field(default=None, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    stopped_by: Literal["trials", "time"]
    duration_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    validation_rows: int = Field(ge=1)
    best_trial: int = Field(ge=0, description="index into trials")
    trials: list[SearchTrial] = Field(min_length=1)


class TrainingRecord(_Frozen):
    """Everything the trainer records about a model."""

    author: str = Field(min_length=1)
    model_type: str = Field(min_length=1)
    hyperparameters: dict[str, JsonValue]
    training_duration_s: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    training_data: TrainingData
    features: list[FeatureSpec] = Field(min_length=1)
    target: str = "churned"
    metrics: Metrics
    feature_distributions: dict[str, FeatureDistribution]
    search: SearchSummary | None = Field(
        default=None, description="present when the hyperparameters came from a search"
    )


class ModelMetadata(TrainingRecord):
    """The full ``metadata.json`` of a registered version."""

    version: Version
    created_at: AwareDatetime
    packages: dict[str, str]
    artifact: Artifact

    @field_validator("packages")
    @classmethod
    def _has_required_packages(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [name for name in REQUIRED_PACKAGES if name not in value]
        if missing:
            raise ValueError(f"missing package versions: {', '.join(missing)}")
        return value

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's input names, in order."""
        return tuple(feature.name for feature in self.features)

    def to_json(self) -> str:
        """Indented JSON with the identifying fields first, as stored and shown."""
        data = self.model_dump(mode="json")
        head = {key: data.pop(key) for key in ("version", "created_at", "author", "model_type")}
        return json.dumps(head | data, indent=2) + "\n"


def package_versions() -> dict[str, str]:
    """Versions of the packages a pickled model depends on, from this runtime."""
    versions = {"python": platform.python_version()}
    for name in REQUIRED_PACKAGES[1:]:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions
