"""The prediction agent's scoring step: which model scores which events, one call per model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.features import feature_matrix
from models.registry import LoadedModel, ModelRegistry
from models.synthetic import generate_customers
from models.train import TrainingSource, train_and_register
from streamer.serving.models import ScoreCache, ServingModels, routes_to_challenger
from streamer.settings import ChallengerSettings
from streamer.worker.stages import prediction
from streamer.worker.stages.prediction import ChallengerPolicy


class CountingModel:
    """A real loaded model that counts its predict calls."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.version = model.version
        self.calls = 0
        self.rows_scored = 0

    def score(self, rows: Any) -> np.ndarray:
        self.calls += 1
        self.rows_scored += len(rows)
        return self.model.score(rows)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    root = tmp_path_factory.mktemp("split")
    registry = ModelRegistry(root)
    train_and_register(registry, TrainingSource(n_customers=800, seed=1), author="ci")
    train_and_register(registry, TrainingSource(n_customers=800, seed=2), author="ci")
    return registry.load("v1"), registry.load("v2")


def _batch(n: int = 2000) -> tuple[np.ndarray, list[str]]:
    customers = generate_customers(n, seed=4)
    return feature_matrix(customers), [str(c["customer_id"]) for c in customers]


def _challenger_settings(**env: str) -> ChallengerSettings:
    """The challenger group as read from these environment variables (and nothing else)."""
    fields = {
        name.removeprefix("STREAMER_CHALLENGER_").lower(): value for name, value in env.items()
    }
    return ChallengerSettings(_env_file=None, **fields)  # type: ignore[call-arg, arg-type]


def _policy(**env: str) -> ChallengerPolicy:
    challenger = _challenger_settings(**env)
    return ChallengerPolicy(challenger.mode, challenger.share)


def test_split_sends_the_hashed_share_to_the_challenger(
    models: tuple[LoadedModel, LoadedModel],
) -> None:
    policy = _policy(STREAMER_CHALLENGER_SHARE="0.3", STREAMER_CHALLENGER_MODE="split")
    champion, challenger = CountingModel(models[0]), CountingModel(models[1])
    matrix, ids = _batch()
    serving = ServingModels(champion, challenger)  # type: ignore[arg-type]
    served, shadow = prediction.score_batch(serving, matrix, ids, policy)
    assert shadow is None
    assert (champion.calls, challenger.calls) == (1, 1)  # one call per model per batch
    by_role = {part.role: part for part in served}
    rows = sorted(np.concatenate([part.rows for part in served]).tolist())
    assert rows == list(range(len(ids)))  # every event scored exactly once
    for role, part in by_role.items():
        assert all(routes_to_challenger(ids[i], 0.3) == (role == "challenger") for i in part.rows)
        np.testing.assert_allclose(part.scores, part.model.score(matrix[part.rows]))
    share = len(by_role["challenger"].rows) / len(ids)
    assert 0.25 < share < 0.35


def test_shadow_scores_every_event_with_both(models: tuple[LoadedModel, LoadedModel]) -> None:
    policy = _policy(STREAMER_CHALLENGER_SHARE="0.3", STREAMER_CHALLENGER_MODE="shadow")
    champion, challenger = CountingModel(models[0]), CountingModel(models[1])
    matrix, ids = _batch(300)
    serving = ServingModels(champion, challenger)  # type: ignore[arg-type]
    served, shadow = prediction.score_batch(serving, matrix, ids, policy)
    assert [(part.role, len(part.rows)) for part in served] == [("champion", 300)]
    assert shadow is not None and (shadow.role, len(shadow.rows)) == ("challenger", 300)
    assert shadow.model is challenger and (champion.calls, challenger.calls) == (1, 1)


def test_without_a_challenger_the_champion_scores_everything(
    models: tuple[LoadedModel, LoadedModel],
) -> None:
    policy = _policy(STREAMER_CHALLENGER_SHARE="1.0")
    champion = CountingModel(models[0])
    matrix, ids = _batch(100)
    serving = ServingModels(champion, None)  # type: ignore[arg-type]
    served, shadow = prediction.score_batch(serving, matrix, ids, policy)
    assert shadow is None and [(p.role, len(p.rows)) for p in served] == [("champion", 100)]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMER_CHALLENGER_SHARE": "1.5"}, "less than or equal to 1"),
        ({"STREAMER_CHALLENGER_MODE": "canary"}, "'split' or 'shadow'"),
    ],
)
def test_bad_challenger_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _challenger_settings(**env)


def test_unchanged_rows_are_served_from_the_cache(models: tuple[LoadedModel, LoadedModel]) -> None:
    policy = _policy(STREAMER_CHALLENGER_MODE="shadow")
    champion, challenger = CountingModel(models[0]), CountingModel(models[1])
    serving = ServingModels(champion, challenger)  # type: ignore[arg-type]
    matrix, ids = _batch(200)
    rows = matrix.tolist()
    cache = ScoreCache()
    first, first_shadow = prediction.score_batch(serving, rows, ids, policy, cache)
    assert (first[0].cached, champion.calls, challenger.calls) == (0, 1, 1)

    # A redelivered batch: same customers, same rows, same models -> no model call at all.
    again, again_shadow = prediction.score_batch(serving, rows, ids, policy, cache)
    assert (again[0].cached, champion.calls, challenger.calls) == (200, 1, 1)
    assert again[0].scores == first[0].scores
    assert again_shadow is not None and first_shadow is not None
    assert again_shadow.scores == first_shadow.scores  # roles are cached apart

    # One customer's profile moved on: only that row goes to the model.
    rows[7] = [*rows[7][:-1], rows[7][-1] + 1]
    moved, _ = prediction.score_batch(serving, rows, ids, policy, cache)
    assert (moved[0].cached, champion.calls, champion.rows_scored) == (199, 2, 201)
    expected = models[0].score(np.asarray([rows[7]]))[0]
    assert moved[0].scores[7] == expected

    # A new champion version invalidates every entry.
    other = CountingModel(models[1])
    swapped, _ = prediction.score_batch(ServingModels(other, None), rows, ids, policy, cache)  # type: ignore[arg-type]
    assert (swapped[0].cached, other.calls) == (0, 1)


def test_score_cache_is_bounded_least_recently_used_out() -> None:
    cache = ScoreCache(size=10)
    for i in range(100):
        cache.put("champion", f"c{i}", "v1", (float(i),), 0.5)
    assert len(cache) == 10
    assert cache.get("champion", "c99", "v1", (99.0,)) == 0.5
    assert cache.get("champion", "c0", "v1", (0.0,)) is None
    assert cache.get("champion", "c99", "v2", (99.0,)) is None
    assert cache.get("challenger", "c99", "v1", (99.0,)) is None
