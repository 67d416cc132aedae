"""A bounded random hyperparameter search, then training and registering the best model.

Trials are fit on the training split minus a stratified validation part and ranked by
validation log loss (a proper scoring rule, so calibration counts, not only ranking).
The first trial is ``DEFAULT_PARAMS``, so the search never picks something worse on
validation than plain ``streamer train``. The best configuration is then refit on the
whole training split and evaluated on the holdout, which the search never saw.

Budgets: at most ``trials`` trials and/or ``time_budget_s`` seconds of searching. The time
budget is checked before each trial with the mean trial time so far, so a search stops
before starting a trial that would overrun it rather than in the middle of one (a single
fit cannot be interrupted cleanly). The first trial always runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import JsonValue
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from models.metadata import ModelMetadata, SearchSummary, SearchTrial
from models.registry import ModelRegistry
from models.train import (
    DEFAULT_PARAMS,
    TrainingSource,
    build_estimator,
    prepare_data,
    register_fitted,
)

__all__ = ["SEARCH_SPACE", "SearchResult", "describe_params", "search_and_register"]

VALIDATION_FRACTION = 0.2

# name -> sampler(rng); ranges around DEFAULT_PARAMS that matter for gradient boosting.
SEARCH_SPACE: dict[str, Callable[[np.random.Generator], JsonValue]] = {
    "learning_rate": lambda rng: round(math.exp(rng.uniform(math.log(0.02), math.log(0.3))), 4),
    "max_leaf_nodes": lambda rng: int(rng.integers(8, 64)),
    "min_samples_leaf": lambda rng: int(rng.integers(10, 120)),
    "l2_regularization": lambda rng: round(float(10 ** rng.uniform(-3, 1)), 5),
    "max_iter": lambda rng: int(rng.choice([100, 200, 300, 500])),
}


@dataclass(frozen=True)
class SearchResult:
    """The registered best model and how the search went."""

    metadata: ModelMetadata
    summary: SearchSummary

    @property
    def best(self) -> SearchTrial:
        return self.summary.trials[self.summary.best_trial]


def _sample(rng: np.random.Generator) -> dict[str, JsonValue]:
    return {name: sampler(rng) for name, sampler in SEARCH_SPACE.items()}


# Many small fits: OpenMP thread start-up and oversubscription on a shared host make
# multi-threaded fits slower and their duration erratic, which a time budget cannot use.
@threadpool_limits.wrap(limits=1)
def search_and_register(
    registry: ModelRegistry,
    source: TrainingSource,
    *,
    author: str | None = None,
    trials: int | None = 20,
    time_budget_s: float | None = None,
    progress: bool | None = None,
) -> SearchResult:
    """Search hyperparameters within the budgets, then train, evaluate and register the best.

    ``progress`` None shows a progress bar only on a terminal. Raises TrainingDataError,
    ValueError (bad budgets) and RegistryError like ``train_and_register``.
    """
    if trials is None and time_budget_s is None:
        raise ValueError("a search needs a trial budget, a time budget or both")
    if trials is not None and trials < 1:
        raise ValueError(f"trial budget must be >= 1, got {trials}")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time budget must be > 0 seconds, got {time_budget_s}")
    seed = source.seed
    prepared = prepare_data(source)
    x_fit, x_val, y_fit, y_val = train_test_split(
        prepared.x_train,
        prepared.y_train,
        test_size=VALIDATION_FRACTION,
        stratify=prepared.y_train,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    results: list[SearchTrial] = []
    stopped_by: Literal["trials", "time"] = "trials"
    started = time.perf_counter()
    bar = tqdm(
        total=trials,
        unit="trial",
        desc="search",
        disable=None if progress is None else not progress,
    )
    try:
        while trials is None or len(results) < trials:
            elapsed = time.perf_counter() - started
            if time_budget_s is not None and results:
                mean_trial = elapsed / len(results)
                if elapsed + mean_trial > time_budget_s:
                    stopped_by = "time"
                    break
            params = dict(DEFAULT_PARAMS) if not results else {**DEFAULT_PARAMS, **_sample(rng)}
            estimator = build_estimator(seed, params)
            fit_started = time.perf_counter()
            estimator.fit(x_fit, y_fit)
            fit_s = time.perf_counter() - fit_started
            positive = list(estimator.classes_).index(1)
            scores = estimator.predict_proba(x_val)[:, positive]
            results.append(
                SearchTrial(
                    params=params,
                    validation_log_loss=float(log_loss(y_val, scores, labels=[0, 1])),
                    validation_roc_auc=float(roc_auc_score(y_val, scores)),
                    fit_s=round(fit_s, 3),
                )
            )
            best = min(results, key=lambda trial: trial.validation_log_loss)
            bar.update(1)
            bar.set_postfix(best_log_loss=f"{best.validation_log_loss:.4f}")
    finally:
        bar.close()
    duration = time.perf_counter() - started
    best_index = min(range(len(results)), key=lambda i: results[i].validation_log_loss)
    summary = SearchSummary(
        trial_budget=trials,
        time_budget_s=time_budget_s,
        stopped_by=stopped_by,
        duration_s=round(duration, 3),
        validation_rows=len(y_val),
        best_trial=best_index,
        trials=results,
    )
    final = build_estimator(seed, results[best_index].params)
    fit_started = time.perf_counter()
    final.fit(prepared.x_train, prepared.y_train)
    meta = register_fitted(
        registry,
        final,
        prepared,
        duration_s=time.perf_counter() - fit_started,
        author=author,
        search=summary,
    )
    return SearchResult(metadata=meta, summary=summary)


def describe_params(params: Mapping[str, JsonValue]) -> str:
    """The searched hyperparameters of a configuration, as ``name=value`` pairs."""
    return " ".join(f"{name}={params[name]}" for name in SEARCH_SPACE if name in params)
