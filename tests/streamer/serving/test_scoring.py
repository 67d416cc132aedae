"""Champion/challenger: the stable hash split and the two-role model holder on a real registry."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.registry import ModelRegistry
from models.train import TrainingSource, train_and_register
from streamer.serving.models import (
    ModelHolder,
    challenger_bucket,
    challenger_mask,
    routes_to_challenger,
)

IDS = [f"c-{i}" for i in range(10_000)]


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.9])
def test_split_share_is_close_to_the_setting(share: float) -> None:
    routed = sum(routes_to_challenger(cid, share) for cid in IDS)
    # Binomial standard deviation is at most 50 for 10k ids: 4 sigma is 200.
    assert abs(routed - share * len(IDS)) < 200, routed


def test_split_edges_and_mask_agree() -> None:
    assert not any(routes_to_challenger(cid, 0.0) for cid in IDS)
    assert all(routes_to_challenger(cid, 1.0) for cid in IDS)
    mask = challenger_mask(IDS[:500], 0.3)
    assert mask.dtype == np.bool_
    assert mask.tolist() == [routes_to_challenger(cid, 0.3) for cid in IDS[:500]]
    assert not challenger_mask(IDS[:10], 0.0).any()


def test_split_is_nested_as_the_share_grows() -> None:
    # Raising the share only moves customers to the challenger, never back.
    small = {cid for cid in IDS if routes_to_challenger(cid, 0.1)}
    large = {cid for cid in IDS if routes_to_challenger(cid, 0.2)}
    assert small < large


def test_bucket_is_stable_across_processes() -> None:
    # Python's str hash is salted per process; the bucket must not be.
    code = "from streamer.serving.models import challenger_bucket as b; print(repr(b('c-42')))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=Path(__file__).resolve().parents[3],
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {repr(challenger_bucket("c-42"))}
    assert 0.0 <= challenger_bucket("") < 1.0
    assert 0.0 <= challenger_bucket("\u00e9\U0001f600") < 1.0


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("holder")
    registry = ModelRegistry(root)
    for seed in (1, 2, 3):
        train_and_register(registry, TrainingSource(n_customers=800, seed=seed), author="ci")
    return root


@pytest.fixture
def registry(three_versions: Path, tmp_path: Path) -> ModelRegistry:
    shutil.copytree(three_versions, tmp_path / "r")
    return ModelRegistry(tmp_path / "r")


def _refresh(holder: ModelHolder) -> bool:
    return asyncio.run(holder.refresh())


def test_holder_serves_latest_without_aliases_then_follows_both_aliases(
    registry: ModelRegistry,
) -> None:
    holder = ModelHolder(registry)
    assert holder.serving() is None
    assert _refresh(holder)
    assert holder.current is not None and holder.current.version == "v3"
    assert holder.challenger is None
    assert not _refresh(holder)  # nothing changed

    registry.set_alias("champion", "v1")
    registry.set_alias("challenger", "v2")
    assert _refresh(holder)
    serving = holder.serving()
    assert serving is not None
    assert (serving.champion.version, serving.challenger and serving.challenger.version) == (
        "v1",
        "v2",
    )

    # Promoting the challenger reuses its loaded model; a challenger equal to the champion
    # is not a comparison, so it is not served as one.
    challenger_model = holder.challenger
    registry.set_alias("champion", "v2")
    assert _refresh(holder)
    assert holder.current is challenger_model
    serving = holder.serving()
    assert serving is not None and serving.challenger is None

    registry.remove_alias("challenger")
    assert _refresh(holder)
    assert holder.challenger is None


def _corrupt(registry: ModelRegistry, version: str) -> None:
    artifact = registry.root / "versions" / version / "model.joblib"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))


def test_holder_refuses_a_corrupt_champion_and_challenger_and_keeps_serving(
    registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    registry.set_alias("champion", "v1")
    registry.set_alias("challenger", "v2")
    holder = ModelHolder(registry)
    assert _refresh(holder)
    _corrupt(registry, "v3")
    before = REGISTRY.get_sample_value("streamer_model_refusals_total", {"version": "v3"}) or 0
    registry.set_alias("champion", "v3")
    registry.set_alias("challenger", "v3")
    assert not _refresh(holder)
    assert holder.current is not None and holder.current.version == "v1"
    assert holder.challenger is not None and holder.challenger.version == "v2"
    assert "sha256 mismatch" in holder.refused["v3"]
    assert "Refused model v3" in caplog.text and "sha256 mismatch" in caplog.text
    after = REGISTRY.get_sample_value("streamer_model_refusals_total", {"version": "v3"})
    assert after == before + 1  # refused once, not on every poll
    assert not _refresh(holder)
    assert REGISTRY.get_sample_value("streamer_model_refusals_total", {"version": "v3"}) == after


PINNED_AFTER_LOAD = """
import asyncio, sys
from threadpoolctl import threadpool_info
from models.registry import ModelRegistry
from streamer.serving.models import ModelHolder
holder = ModelHolder(ModelRegistry(sys.argv[1]))
asyncio.run(holder.refresh())  # the loop runs on this thread, the one that scores
print(sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}))
"""


def test_holder_pins_the_scoring_thread_to_one_openmp_thread(registry: ModelRegistry) -> None:
    # A fresh process: the OpenMP runtime arrives with the model, after any import-time
    # limit, and its default is one thread per CPU.
    result = subprocess.run(
        [sys.executable, "-c", PINNED_AFTER_LOAD, str(registry.root)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"},
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.strip() == "[1]", result.stdout + result.stderr
