"""The bounded hyperparameter search: budgets, the recorded summary, the registered best."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import ModelRegistry
from models.search import SEARCH_SPACE, search_and_register
from models.train import DEFAULT_PARAMS, TrainingSource


def test_trial_budget_is_exact_and_the_best_is_registered(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    result = search_and_register(
        registry, TrainingSource(n_customers=1500, seed=5), author="ci", trials=4
    )
    summary = result.summary
    assert len(summary.trials) == 4
    assert summary.stopped_by == "trials" and summary.trial_budget == 4
    # Trial 0 is the default configuration, the others are drawn from the search space.
    assert summary.trials[0].params == DEFAULT_PARAMS
    assert all(set(SEARCH_SPACE) <= set(trial.params) for trial in summary.trials[1:])
    losses = [trial.validation_log_loss for trial in summary.trials]
    assert summary.best_trial == losses.index(min(losses))
    meta = registry.metadata("v1")
    assert meta == result.metadata and meta.search == summary
    for name, value in result.best.params.items():
        assert meta.hyperparameters[name] == value  # registered with the best configuration
    assert summary.validation_rows == 240  # 20 % of the 1200 training rows
    assert meta.training_data.holdout_rows == 300  # the holdout is untouched by the search
    registry.load("v1")


def test_time_budget_stops_cleanly_after_the_first_trial(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    result = search_and_register(
        registry,
        TrainingSource(n_customers=1500, seed=5),
        author="ci",
        trials=1000,
        time_budget_s=1e-6,
    )
    assert result.summary.stopped_by == "time"
    assert len(result.summary.trials) == 1  # the first trial always runs
    assert registry.versions() == ["v1"]


def test_search_is_reproducible_per_seed(tmp_path: Path) -> None:
    first = search_and_register(
        ModelRegistry(tmp_path / "a"), TrainingSource(n_customers=800, seed=9), trials=3
    )
    second = search_and_register(
        ModelRegistry(tmp_path / "b"), TrainingSource(n_customers=800, seed=9), trials=3
    )
    assert [t.params for t in first.summary.trials] == [t.params for t in second.summary.trials]


@pytest.mark.parametrize(
    ("trials", "budget", "message"),
    [(None, None, "needs a trial budget"), (0, None, "trial budget"), (3, 0.0, "time budget")],
)
def test_bad_budgets(
    tmp_path: Path, trials: int | None, budget: float | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        search_and_register(
            ModelRegistry(tmp_path), TrainingSource(), trials=trials, time_budget_s=budget
        )
    assert ModelRegistry(tmp_path).versions() == []
