"""Training: metrics, metadata completeness, file inputs and row-level data errors."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sklearn

from models.features import FEATURE_NAMES, FEATURE_TYPES, feature_matrix
from models.fsutil import sha256_file
from models.metadata import ModelMetadata
from models.registry import ModelRegistry
from models.synthetic import generate_training_set
from models.train import TrainingDataError, TrainingSource, resolve_author, train_and_register
from models.training_data import REQUIRED_COLUMNS

N_CUSTOMERS = 4000
SEED = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, ModelMetadata]:
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    meta = train_and_register(
        registry, TrainingSource(n_customers=N_CUSTOMERS, seed=SEED), author="alice"
    )
    return registry, meta


def _write_csv(path: Path, rows: list[dict[str, object]], columns: tuple[str, ...]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _labelled_rows(n: int, seed: int = 1) -> list[dict[str, object]]:
    profiles, labels = generate_training_set(n, seed=seed)
    return [{**p, "churned": int(y)} for p, y in zip(profiles, labels.tolist(), strict=True)]


def test_holdout_metrics_show_a_useful_model(trained: tuple[ModelRegistry, ModelMetadata]) -> None:
    metrics = trained[1].metrics
    assert metrics.roc_auc > 0.78
    rate = metrics.positive_rate
    assert 0.15 <= rate <= 0.30
    assert 0 < metrics.brier < rate * (1 - rate)  # beats always predicting the base rate
    base_log_loss = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert 0 < metrics.log_loss < base_log_loss


def test_calibration_table_covers_the_holdout(
    trained: tuple[ModelRegistry, ModelMetadata],
) -> None:
    meta = trained[1]
    bins = meta.metrics.calibration
    assert sum(b.count for b in bins) == meta.training_data.holdout_rows
    assert [b.bin_lower for b in bins] == sorted(b.bin_lower for b in bins)
    for b in bins:
        assert b.bin_lower <= b.mean_predicted <= b.bin_upper
        assert b.bin_upper - b.bin_lower == pytest.approx(0.1)
    # a calibrated model: predicted and observed rates agree in the well-populated bins
    for b in bins:
        if b.count >= 100:
            assert abs(b.mean_predicted - b.fraction_positive) < 0.1


def test_metadata_is_complete(trained: tuple[ModelRegistry, ModelMetadata]) -> None:
    registry, meta = trained
    assert meta.version == "v1"
    assert datetime.now(UTC) - meta.created_at < timedelta(minutes=10)
    assert meta.author == "alice"
    assert meta.model_type == "HistGradientBoostingClassifier"
    assert meta.hyperparameters["random_state"] == SEED
    assert meta.hyperparameters["early_stopping"] is True
    assert 0 < meta.training_duration_s < 120
    data = meta.training_data
    assert data.source == f"synthetic: generate_training_set(n={N_CUSTOMERS}, seed={SEED})"
    assert data.rows == N_CUSTOMERS
    assert data.holdout_rows == N_CUSTOMERS // 5
    assert data.train_rows + data.holdout_rows == data.rows
    assert [(f.name, f.type) for f in meta.features] == list(FEATURE_TYPES.items())
    assert meta.target == "churned"
    assert meta.packages["scikit-learn"] == sklearn.__version__
    assert meta.packages["numpy"] == np.__version__
    assert meta.packages["joblib"] == joblib.__version__
    assert meta.packages["python"].count(".") == 2
    artifact = registry.root / "versions" / "v1" / meta.artifact.file
    assert meta.artifact.file == "model.joblib"
    assert meta.artifact.sha256 == sha256_file(artifact)
    on_disk = json.loads((artifact.parent / "metadata.json").read_text())
    assert ModelMetadata.model_validate(on_disk) == meta


def test_feature_distributions_summarise_training_rows(
    trained: tuple[ModelRegistry, ModelMetadata],
) -> None:
    distributions = trained[1].feature_distributions
    assert list(distributions) == list(FEATURE_NAMES)
    for name, d in distributions.items():
        q = d.quantiles
        ordered = [d.min, q.p01, q.p05, q.p25, q.p50, q.p75, q.p95, q.p99, d.max]
        assert ordered == sorted(ordered), name
        assert d.min <= d.mean <= d.max
        assert d.std >= 0
    assert 0.2 < distributions["plan_basic"].mean < 0.4  # the generator's 30 % basic plans
    assert distributions["page_views"].max > distributions["page_views"].quantiles.p50


def test_the_registered_model_loads_and_scores(
    trained: tuple[ModelRegistry, ModelMetadata],
) -> None:
    registry, _ = trained
    model = registry.load("v1")
    profiles, _ = generate_training_set(5, seed=99)
    risky = {**profiles[0], "complaints": 6, "cancel_page_views": 5, "contract": "monthly"}
    calm = {**profiles[0], "complaints": 0, "cancel_page_views": 0, "contract": "annual"}
    risky_score, calm_score = model.score(feature_matrix([risky, calm]))
    assert 0.0 <= calm_score < risky_score <= 1.0


def test_author_falls_back_to_the_login_name() -> None:
    assert resolve_author("bob") == "bob"
    assert resolve_author(None) not in ("", "bob")


def test_train_from_csv_records_the_file(tmp_path: Path) -> None:
    columns = ("customer_id", *REQUIRED_COLUMNS, "country")
    path = _write_csv(tmp_path / "train.csv", _labelled_rows(1200), columns)
    registry = ModelRegistry(tmp_path / "registry")
    meta = train_and_register(registry, TrainingSource(data=path, seed=1), author="t")
    assert meta.training_data.source == str(path.resolve())
    assert meta.training_data.sha256 == sha256_file(path)
    assert meta.training_data.rows == 1200
    assert meta.metrics.roc_auc > 0.7


def test_train_from_parquet(tmp_path: Path) -> None:
    rows = _labelled_rows(1200, seed=2)
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    registry = ModelRegistry(tmp_path / "registry")
    meta = train_and_register(registry, TrainingSource(data=path, seed=1), author="t")
    assert meta.training_data.rows == 1200
    assert registry.versions() == ["v1"]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("plan", "gold", "column 'plan': must be one of basic, standard, premium"),
        ("complaints", "-2", "column 'complaints': must be an integer >= 0"),
        ("tenure_months", "1.5", "column 'tenure_months': must be an integer >= 0"),
        ("monthly_spend", "lots", "column 'monthly_spend': must be a number >= 0"),
        ("orders", "", "column 'orders': empty value"),
        ("churned", "2", "column 'churned': must be 0 or 1"),
    ],
)
def test_bad_csv_row_names_file_line_and_column(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    rows = _labelled_rows(30)
    rows[4][column] = value  # header is line 1, so rows[4] is line 6
    path = _write_csv(tmp_path / "bad.csv", rows, REQUIRED_COLUMNS)
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(TrainingDataError) as caught:
        train_and_register(registry, TrainingSource(data=path))
    assert str(caught.value) == f"{path}: line 6: {message}"
    assert registry.versions() == []


def test_csv_structure_errors(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    no_orders = tuple(c for c in REQUIRED_COLUMNS if c != "orders")
    path = _write_csv(tmp_path / "missing.csv", _labelled_rows(5), no_orders)
    with pytest.raises(TrainingDataError, match=r"missing.csv: line 1: missing columns: orders$"):
        train_and_register(registry, TrainingSource(data=path))

    path = _write_csv(tmp_path / "short.csv", _labelled_rows(5), REQUIRED_COLUMNS)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainingDataError, match=r"short.csv: line 4: expected 10 fields, got 9$"):
        train_and_register(registry, TrainingSource(data=path))

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TrainingDataError, match="file is empty"):
        train_and_register(registry, TrainingSource(data=empty))


def test_bad_parquet_row_names_the_row_index(tmp_path: Path) -> None:
    rows = _labelled_rows(20)
    rows[7]["support_calls"] = -1
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(TrainingDataError) as caught:
        train_and_register(ModelRegistry(tmp_path / "registry"), TrainingSource(data=path))
    assert str(caught.value) == (f"{path}: row 7: column 'support_calls': must be an integer >= 0")


def test_unusable_inputs(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(TrainingDataError, match="no such file"):
        train_and_register(registry, TrainingSource(data=tmp_path / "absent.csv"))
    with pytest.raises(TrainingDataError, match=r"unsupported file type '\.xlsx'"):
        train_and_register(registry, TrainingSource(data=tmp_path / "data.xlsx"))
    not_parquet = tmp_path / "data.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(TrainingDataError, match="not a readable Parquet file"):
        train_and_register(registry, TrainingSource(data=not_parquet))
    rows = [{**row, "churned": 0} for row in _labelled_rows(50)]
    one_class = _write_csv(tmp_path / "one_class.csv", rows, REQUIRED_COLUMNS)
    with pytest.raises(TrainingDataError, match=r"need at least 10 rows .* got 50 and 0"):
        train_and_register(registry, TrainingSource(data=one_class))
    with pytest.raises(ValueError, match="unknown hyperparameters: max_trees"):
        train_and_register(registry, TrainingSource(n_customers=100), params={"max_trees": 5})
    assert registry.versions() == []
