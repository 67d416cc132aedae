"""`streamer models list|show|promote|rollback` against a real two-version registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from models.registry import ModelRegistry
from models.train import TrainingSource, train_and_register
from streamer.commands.models import models


@pytest.fixture(scope="module")
def two_version_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    registry = ModelRegistry(root)
    train_and_register(registry, TrainingSource(n_customers=1000, seed=1), author="ci")
    train_and_register(registry, TrainingSource(n_customers=1000, seed=2), author="ci")
    return root


@pytest.fixture
def root(two_version_registry: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "registry"
    shutil.copytree(two_version_registry, copy)
    return copy


def _run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(models, list(args), env={"MODEL_REGISTRY": str(root)})


def _error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a ClickException, not a crash
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_list_shows_versions_metrics_and_serving(root: Path) -> None:
    result = _run(root, "list")
    assert result.exit_code == 0, result.output
    header, v1, v2, serving = result.output.splitlines()
    assert header.split() == ["VERSION", "CREATED_AT", "MODEL_TYPE", "ROC_AUC", "ALIASES"]
    meta = ModelRegistry(root).metadata("v1")
    assert v1.split() == [
        "v1",
        meta.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "HistGradientBoostingClassifier",
        f"{meta.metrics.roc_auc:.3f}",
        "-",
    ]
    assert v2.split()[0] == "v2"
    assert serving == "serving: v2 (latest; no champion alias set)"


def test_list_empty_registry(tmp_path: Path) -> None:
    result = _run(tmp_path, "list")
    assert result.exit_code == 0
    assert result.output == f"no models registered in {tmp_path}\n"


def test_list_survives_a_broken_version(root: Path) -> None:
    (root / "versions" / "v1" / "metadata.json").write_text("{}")
    result = _run(root, "list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split() == ["v1", "?", "<invalid", "metadata>", "?", "-"]


def test_show_prints_metadata_json(root: Path) -> None:
    result = _run(root, "show", "v1")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["version"] == "v1"
    assert shown["author"] == "ci"
    assert shown["artifact"]["sha256"] == ModelRegistry(root).metadata("v1").artifact.sha256
    assert result.output.startswith('{\n  "version": "v1",')
    assert json.loads(_run(root, "show", "latest").output)["version"] == "v2"


def test_show_unknown_version_is_one_line(root: Path) -> None:
    assert _error(_run(root, "show", "v7")) == (
        f"Error: unknown model version 'v7' in {root} (latest is v2)"
    )
    assert _error(_run(root, "show", "champion")) == (
        f"Error: alias 'champion' is not set in {root}"
    )


def test_promote_and_list_aliases(root: Path) -> None:
    result = _run(root, "promote", "v1")
    assert (result.exit_code, result.output) == (0, "champion -> v1\n")
    result = _run(root, "promote", "v2", "--as", "challenger")
    assert (result.exit_code, result.output) == (0, "challenger -> v2\n")
    lines = _run(root, "list").output.splitlines()
    assert lines[1].split()[-1] == "champion"
    assert lines[2].split()[-1] == "challenger"
    assert lines[3] == "serving: v1 (champion)"
    result = _run(root, "promote", "challenger")  # aliases resolve: challenger -> champion
    assert (result.exit_code, result.output) == (0, "champion -> v2 (was v1)\n")


def test_promote_unknown_version_is_one_line(root: Path) -> None:
    assert _error(_run(root, "promote", "v9")).startswith("Error: unknown model version 'v9'")
    assert ModelRegistry(root).aliases() == {}


def test_promote_refuses_a_corrupted_model(root: Path) -> None:
    artifact = root / "versions" / "v2" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes()[:-10])
    assert _error(_run(root, "promote", "v2")).startswith(
        "Error: model v2 refused: artifact sha256 mismatch"
    )
    assert ModelRegistry(root).aliases() == {}


def test_promote_rejects_unknown_alias(root: Path) -> None:
    result = _run(root, "promote", "v1", "--as", "canary")
    assert result.exit_code == 2
    assert "canary" in result.output


def test_rollback(root: Path) -> None:
    assert _run(root, "promote", "v1").exit_code == 0
    assert _run(root, "promote", "v2").exit_code == 0
    result = _run(root, "rollback")
    assert (result.exit_code, result.output) == (0, "champion -> v1 (was v2)\n")
    assert ModelRegistry(root).serving_version() == "v1"
    assert _error(_run(root, "rollback")) == "Error: no previous champion to roll back to"


def test_registry_path_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "registry.txt"
    not_a_dir.write_text("")
    assert _error(_run(not_a_dir, "list")).startswith("Error: cannot read registry: ")


def test_corrupt_aliases_file_is_one_line(root: Path) -> None:
    (root / "aliases.json").write_text("[1, 2")
    assert _error(_run(root, "list")).startswith(f"Error: {root / 'aliases.json'} is invalid")


def test_unset_ends_a_challenger_comparison(root: Path) -> None:
    assert _run(root, "promote", "v1", "--as", "challenger").exit_code == 0
    result = _run(root, "unset", "challenger")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "challenger unset (was v1)"
    assert ModelRegistry(root).aliases() == {}
    assert _run(root, "unset", "challenger").output.strip() == "challenger unset (was unset)"
    bad = _run(root, "unset", "referee")
    assert bad.exit_code == 2 and "Invalid value for '{champion|challenger}'" in bad.output
