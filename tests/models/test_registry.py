"""The folder registry: versions, atomic registration, aliases, rollback and load refusals."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, SupportsIndex

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from models.aliases import ROLES, AliasState
from models.evaluation import feature_distributions, holdout_metrics
from models.features import FEATURE_NAMES, feature_matrix
from models.fsutil import sha256_file
from models.metadata import TrainingData, TrainingRecord, feature_specs
from models.registry import (
    ModelRefused,
    ModelRegistry,
    RegistryError,
    ServingVersions,
    UnknownVersion,
)
from models.synthetic import generate_training_set
from models.versions import version_name, version_number


@pytest.fixture(scope="module")
def dataset() -> tuple[np.ndarray, np.ndarray]:
    profiles, labels = generate_training_set(600, seed=1)
    return feature_matrix(profiles), labels


@pytest.fixture(scope="module")
def classifier(dataset: tuple[np.ndarray, np.ndarray]) -> LogisticRegression:
    matrix, labels = dataset
    return LogisticRegression(max_iter=2000).fit(matrix, labels)


@pytest.fixture(scope="module")
def record(
    dataset: tuple[np.ndarray, np.ndarray], classifier: LogisticRegression
) -> TrainingRecord:
    matrix, labels = dataset
    return TrainingRecord(
        author="tester",
        model_type="LogisticRegression",
        hyperparameters={"max_iter": 2000},
        training_duration_s=0.01,
        training_data=TrainingData(source="test", rows=600, train_rows=600, holdout_rows=600),
        features=feature_specs(),
        metrics=holdout_metrics(labels, classifier.predict_proba(matrix)[:, 1]),
        feature_distributions=feature_distributions(matrix, FEATURE_NAMES),
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def two_versions(
    registry: ModelRegistry, classifier: LogisticRegression, record: TrainingRecord
) -> ModelRegistry:
    registry.register(classifier, record)
    registry.register(classifier, record)
    return registry


class Unpicklable(LogisticRegression):
    """A classifier that fails half-way through serialisation."""

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        raise TypeError("cannot pickle this estimator")


def _rewrite_metadata(registry: ModelRegistry, version: str, **changes: object) -> None:
    path = registry.root / "versions" / version / "metadata.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _replace_artifact(registry: ModelRegistry, version: str, estimator: object) -> None:
    """Swap the artifact and keep the checksum consistent, as a careless hand edit would."""
    artifact = registry.root / "versions" / version / "model.joblib"
    joblib.dump(estimator, artifact)
    meta = json.loads((artifact.parent / "metadata.json").read_text())
    meta["artifact"]["sha256"] = sha256_file(artifact)
    (artifact.parent / "metadata.json").write_text(json.dumps(meta))


def test_empty_registry(registry: ModelRegistry) -> None:
    assert registry.versions() == []
    assert registry.latest_version() is None
    assert registry.serving_version() is None
    assert registry.serving_versions() == ServingVersions(None, None, champion_is_alias=False)
    assert registry.aliases() == {}
    assert not registry.root.exists()  # reading never creates the root


def test_versions_increment_and_sort_numerically(
    registry: ModelRegistry, classifier: LogisticRegression, record: TrainingRecord
) -> None:
    assert registry.register(classifier, record).version == "v1"
    assert registry.register(classifier, record).version == "v2"
    (registry.root / "versions" / "v10").mkdir()
    (registry.root / "versions" / "notes").mkdir()
    assert registry.versions() == ["v1", "v2", "v10"]
    assert registry.register(classifier, record).version == "v11"
    assert registry.latest_version() == "v11"


def test_registered_metadata_is_complete_and_matches_the_artifact(
    two_versions: ModelRegistry, record: TrainingRecord
) -> None:
    meta = two_versions.metadata("v2")
    assert meta.version == "v2"
    offset = meta.created_at.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert meta.author == "tester"
    assert meta.features == feature_specs()
    assert set(meta.packages) >= {"python", "scikit-learn", "numpy", "joblib"}
    artifact = two_versions.root / "versions" / "v2" / meta.artifact.file
    assert meta.artifact.sha256 == sha256_file(artifact)
    stored = json.loads((artifact.parent / "metadata.json").read_text())
    assert list(stored)[:2] == ["version", "created_at"]
    assert stored["metrics"] == record.metrics.model_dump(mode="json")


def test_failed_registration_leaves_nothing_behind(
    registry: ModelRegistry,
    dataset: tuple[np.ndarray, np.ndarray],
    record: TrainingRecord,
) -> None:
    matrix, labels = dataset
    broken = Unpicklable(max_iter=2000).fit(matrix, labels)
    with pytest.raises(RegistryError, match="cannot serialise Unpicklable"):
        registry.register(broken, record)
    assert list((registry.root / "versions").iterdir()) == []
    assert list((registry.root / ".staging").iterdir()) == []
    assert registry.versions() == []


def test_crash_mid_write_leaves_no_version(
    registry: ModelRegistry,
    dataset: tuple[np.ndarray, np.ndarray],
    classifier: LogisticRegression,
    record: TrainingRecord,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A killed process never runs its cleanup: disable it to see what a crash leaves.
    monkeypatch.setattr("models.registry.shutil.rmtree", lambda *args, **kwargs: None)
    matrix, labels = dataset
    with pytest.raises(RegistryError):
        registry.register(Unpicklable(max_iter=2000).fit(matrix, labels), record)
    (half_written,) = (registry.root / ".staging").iterdir()
    assert (half_written / "model.joblib").exists()
    assert list((registry.root / "versions").iterdir()) == []
    assert registry.latest_version() is None
    assert registry.register(classifier, record).version == "v1"


def test_register_refuses_a_non_classifier(
    registry: ModelRegistry, dataset: tuple[np.ndarray, np.ndarray], record: TrainingRecord
) -> None:
    matrix, labels = dataset
    with pytest.raises(RegistryError, match="LinearRegression: it has no predict_proba"):
        registry.register(LinearRegression().fit(matrix, labels), record)
    assert registry.versions() == []


def test_register_takes_the_next_number_when_it_loses_a_race(
    tmp_path: Path, classifier: LogisticRegression, record: TrainingRecord
) -> None:
    class StaleRegistry(ModelRegistry):
        """Allocates v1 first, as a process that listed versions/ before a rival won would."""

        stale = True

        def _next_version(self) -> str:
            if self.stale:
                self.stale = False
                return "v1"
            return super()._next_version()

    ModelRegistry(tmp_path).register(classifier, record)  # the rival takes v1
    meta = StaleRegistry(tmp_path).register(classifier, record)
    assert meta.version == "v2"
    assert ModelRegistry(tmp_path).metadata("v1").version == "v1"  # the rival's v1 survives


def test_concurrent_registrations_get_distinct_versions(
    registry: ModelRegistry, classifier: LogisticRegression, record: TrainingRecord
) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def register() -> None:
        version = registry.register(classifier, record).version
        with lock:
            results.append(version)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=version_number) == [version_name(i) for i in range(1, 9)]
    assert registry.versions() == [version_name(i) for i in range(1, 9)]


def test_version_names() -> None:
    assert [version_number(name) for name in ("v1", "v10", "v123")] == [1, 10, 123]
    for name in ("v0", "v01", "1", "v", "V1", "v1 ", "v1\n", "v-1", "latest"):
        assert version_number(name) is None, name
    assert version_name(12) == "v12" and version_number(version_name(12)) == 12
    with pytest.raises(ValueError, match="start at 1"):
        version_name(0)


def test_unknown_versions(two_versions: ModelRegistry) -> None:
    for ref in ("v9", "v0", "../versions/v1", "latest", ""):
        with pytest.raises(UnknownVersion) as caught:
            two_versions.metadata(ref)
        assert "\n" not in str(caught.value)
    with pytest.raises(ModelRefused, match=r"model v9 refused: unknown model version 'v9' "):
        two_versions.load("v9")  # e.g. a hand-edited alias naming a version that is gone


def test_aliases_promote_and_rollback(two_versions: ModelRegistry) -> None:
    registry = two_versions
    assert registry.serving_version() == "v2"  # no champion: latest serves
    assert registry.serving_versions() == ServingVersions("v2", None, champion_is_alias=False)
    registry.set_alias("champion", "v1")
    assert registry.serving_version() == "v1"
    registry.set_alias("champion", "v2")
    registry.set_alias("challenger", "v1")
    assert registry.serving_versions() == ServingVersions("v2", "v1", champion_is_alias=True)
    assert registry.aliases() == {"champion": "v2", "challenger": "v1"}
    assert registry.resolve("champion") == "v2"
    assert registry.resolve("challenger") == "v1"
    assert registry.resolve("latest") == "v2"
    assert registry.resolve("v1") == "v1"

    assert registry.rollback() == "v1"
    assert registry.aliases()["champion"] == "v1"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()

    registry.remove_alias("challenger")
    assert registry.aliases() == {"champion": "v1"}
    with pytest.raises(UnknownVersion, match="alias 'challenger' is not set"):
        registry.resolve("challenger")
    stored = json.loads((registry.root / "aliases.json").read_text())
    assert stored["champion"] == "v1"
    assert stored["history"]["challenger"] == ["v1"]
    # atomic writes leave no temporary files next to aliases.json
    assert sorted(p.name for p in registry.root.iterdir()) == [
        ".aliases.lock",
        ".staging",
        "aliases.json",
        "versions",
    ]


def test_promoting_the_same_version_twice_keeps_history_clean(two_versions: ModelRegistry) -> None:
    two_versions.set_alias("champion", "v1")
    two_versions.set_alias("champion", "v1")
    two_versions.set_alias("champion", "v2")
    assert two_versions.rollback() == "v1"
    with pytest.raises(RegistryError):
        two_versions.rollback()


def test_set_alias_rejects_unknown_versions_and_aliases(two_versions: ModelRegistry) -> None:
    two_versions.set_alias("champion", "v1")
    with pytest.raises(UnknownVersion):
        two_versions.set_alias("champion", "v3")
    with pytest.raises(ValueError, match="unknown alias 'canary'"):
        two_versions.set_alias("canary", "v1")  # type: ignore[arg-type]
    assert two_versions.aliases() == {"champion": "v1"}


def test_every_role_is_an_alias_field() -> None:
    assert set(AliasState.model_fields) == {*ROLES, "history"}


def test_corrupt_aliases_file_is_a_one_line_error(two_versions: ModelRegistry) -> None:
    (two_versions.root / "aliases.json").write_text('{"champion": 3}')
    with pytest.raises(RegistryError, match=r"aliases.json is invalid: champion"):
        two_versions.serving_version()


def test_load_scores_with_the_positive_class(
    two_versions: ModelRegistry,
    classifier: LogisticRegression,
    dataset: tuple[np.ndarray, np.ndarray],
) -> None:
    matrix, _ = dataset
    model = two_versions.load("v1")
    assert model.version == "v1"
    assert model.metadata == two_versions.metadata("v1")
    scores = model.score(matrix[:50])
    assert scores.shape == (50,)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, classifier.predict_proba(matrix[:50])[:, 1])
    assert model.score(matrix[0]).shape == (1,)  # a single 1-D row
    with pytest.raises(AttributeError):
        model.version = "v2"  # type: ignore[misc]


def test_load_refuses_a_corrupted_artifact(two_versions: ModelRegistry) -> None:
    artifact = two_versions.root / "versions" / "v1" / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelRefused) as caught:
        two_versions.load("v1")
    assert caught.value.version == "v1"
    assert caught.value.reason.startswith("artifact sha256 mismatch")
    assert str(caught.value).startswith("model v1 refused: artifact sha256 mismatch")
    two_versions.load("v2")  # the other version is unaffected


def test_load_refuses_a_missing_artifact(two_versions: ModelRegistry) -> None:
    (two_versions.root / "versions" / "v1" / "model.joblib").unlink()
    with pytest.raises(ModelRefused, match=r"artifact model\.joblib is missing"):
        two_versions.load("v1")


def test_load_refuses_invalid_metadata(two_versions: ModelRegistry) -> None:
    (two_versions.root / "versions" / "v1" / "metadata.json").write_text("{not json")
    with pytest.raises(ModelRefused, match=r"model v1 refused: metadata\.json is invalid"):
        two_versions.load("v1")
    _rewrite_metadata(two_versions, "v2", metrics={"roc_auc": 2.0})
    with pytest.raises(ModelRefused, match=r"metadata.json is invalid at metrics\.roc_auc"):
        two_versions.load("v2")


_FEATURES = [spec.model_dump() for spec in feature_specs()]


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        (
            [_FEATURES[1], _FEATURES[0], *_FEATURES[2:]],
            "model feature order differs from FEATURE_NAMES at position 0: "
            "'monthly_spend' instead of 'tenure_months'",
        ),
        (
            [*_FEATURES[:-1], {"name": "cancel_views", "type": "int"}],
            "model features do not match FEATURE_NAMES: "
            "missing ['cancel_page_views'], unexpected ['cancel_views']",
        ),
    ],
    ids=["reordered", "renamed"],
)
def test_load_refuses_a_feature_list_that_differs_from_feature_names(
    two_versions: ModelRegistry, features: list[dict[str, str]], reason: str
) -> None:
    _rewrite_metadata(two_versions, "v1", features=features)
    with pytest.raises(ModelRefused) as caught:
        two_versions.load("v1")
    assert caught.value.reason == reason


def test_load_refuses_an_artifact_that_is_not_a_classifier(
    two_versions: ModelRegistry, dataset: tuple[np.ndarray, np.ndarray]
) -> None:
    matrix, labels = dataset
    _replace_artifact(two_versions, "v1", LinearRegression().fit(matrix, labels))
    with pytest.raises(ModelRefused) as caught:
        two_versions.load("v1")
    assert caught.value.reason == "LinearRegression has no predict_proba (not a classifier)"


def test_load_refuses_an_artifact_that_does_not_unpickle(two_versions: ModelRegistry) -> None:
    artifact = two_versions.root / "versions" / "v1" / "model.joblib"
    artifact.write_bytes(b"definitely not a pickle")
    _rewrite_metadata(
        two_versions,
        "v1",
        artifact={"file": "model.joblib", "sha256": sha256_file(artifact)},
    )
    with pytest.raises(ModelRefused, match="artifact could not be unpickled"):
        two_versions.load("v1")


def test_load_refuses_a_classifier_with_the_wrong_inputs(two_versions: ModelRegistry) -> None:
    rng = np.random.default_rng(0)
    narrow = LogisticRegression().fit(rng.random((40, 3)), np.arange(40) % 2)
    _replace_artifact(two_versions, "v1", narrow)
    with pytest.raises(ModelRefused, match="estimator expects 3 inputs, FEATURE_NAMES has 10"):
        two_versions.load("v1")


def test_checksum_is_checked_before_features(two_versions: ModelRegistry) -> None:
    artifact = two_versions.root / "versions" / "v1" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    _rewrite_metadata(two_versions, "v1", features=[{"name": "x", "type": "int"}])
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        two_versions.load("v1")


def test_unwritable_registry_is_a_registry_error(
    tmp_path: Path, classifier: LogisticRegression, record: TrainingRecord
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(RegistryError, match=f"cannot write to registry {not_a_dir}"):
        ModelRegistry(not_a_dir).register(classifier, record)
