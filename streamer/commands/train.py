"""``streamer train``: train a churn model and register it as the next version."""

from __future__ import annotations

from pathlib import Path

import click
from threadpoolctl import threadpool_limits

from models.registry import ModelRegistry, RegistryError
from models.search import SearchResult, describe_params, search_and_register
from models.train import (
    DEFAULT_CUSTOMERS,
    DEFAULT_SEED,
    TrainingDataError,
    TrainingSource,
    train_and_register,
)
from streamer.commands.common import customers_option, load_settings

DEFAULT_TRIALS = 20


@click.command("train")
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Labelled CSV or Parquet file (see the README for columns); default: synthetic.",
)
@customers_option(
    DEFAULT_CUSTOMERS, minimum=100, help="Synthetic customers to generate when --data is not given."
)
@click.option("--seed", type=int, default=DEFAULT_SEED, help="Random seed.")
@click.option("--author", default=None, help="Recorded author [default: $MODEL_AUTHOR or login].")
@click.option(
    "--search",
    is_flag=True,
    help="Run a random hyperparameter search first and register the best configuration.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help=f"Most configurations to try with --search [default: {DEFAULT_TRIALS}, "
    "or unbounded with --time-budget].",
)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Most seconds to spend searching with --search; a trial that would overrun it "
    "is not started.",
)
def train(
    data: Path | None,
    customers: int,
    seed: int,
    author: str | None,
    search: bool,
    trials: int | None,
    time_budget: float | None,
) -> None:
    """Train a churn model, evaluate it on a holdout and register it.

    Aliases are not moved: promote the new version with `streamer models promote`.
    """
    if not search and (trials is not None or time_budget is not None):
        raise click.UsageError("--trials and --time-budget need --search")
    if search and trials is None and time_budget is None:
        trials = DEFAULT_TRIALS
    settings = load_settings()
    registry = ModelRegistry(settings.models.registry)
    author = author or settings.models.author
    training = TrainingSource(data, customers, seed)
    source = str(data) if data else f"{customers} synthetic customers (seed {seed})"
    click.echo(f"{'searching' if search else 'training'} on {source} ...", err=True)
    try:
        # One thread: OpenMP start-up and oversubscription on a shared host cost more than
        # they give on data of this size, and make fit times (and a time budget) erratic.
        with threadpool_limits(limits=1):
            if search:
                result = search_and_register(
                    registry,
                    training,
                    author=author,
                    trials=trials,
                    time_budget_s=time_budget,
                )
                _report_search(result)
                meta = result.metadata
            else:
                meta = train_and_register(registry, training, author=author)
    except (TrainingDataError, RegistryError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    metrics = meta.metrics
    click.echo(
        f"registered {meta.version} in {registry.root} "
        f"({meta.model_type}, {meta.training_data.rows} rows, {meta.training_duration_s:.1f} s)"
    )
    click.echo(
        f"holdout ({meta.training_data.holdout_rows} rows): roc_auc={metrics.roc_auc:.3f} "
        f"log_loss={metrics.log_loss:.3f} brier={metrics.brier:.3f} "
        f"positive_rate={metrics.positive_rate:.3f}"
    )
    try:
        serving = registry.serving_versions()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if serving.champion_is_alias:
        click.echo(
            f"serving: champion {serving.champion} "
            f"(promote with: streamer models promote {meta.version})"
        )
    else:
        click.echo(f"serving: latest version {serving.champion} (no champion alias set)")


def _report_search(result: SearchResult) -> None:
    summary = result.summary
    tried = len(summary.trials)
    if summary.stopped_by == "time":
        planned = f" of {summary.trial_budget}" if summary.trial_budget else ""
        click.echo(
            f"search stopped: time budget of {summary.time_budget_s:g} s reached after "
            f"{tried}{planned} trials ({summary.duration_s:.1f} s)"
        )
    else:
        click.echo(f"search finished: {tried} trials in {summary.duration_s:.1f} s")
    best = result.best
    click.echo(
        f"best configuration (trial {summary.best_trial + 1}): {describe_params(best.params)} "
        f"(validation log_loss={best.validation_log_loss:.4f} "
        f"roc_auc={best.validation_roc_auc:.3f})"
    )
