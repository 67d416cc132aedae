"""``streamer train``: train a churn model and register it as the next version."""

from __future__ import annotations

from pathlib import Path

import click

from models.registry import RegistryError, registry_from_env
from models.train import TrainingDataError, train_and_register


@click.command("train")
@click.option(
    "--data",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Labelled CSV or Parquet file (see the README for columns); default: synthetic.",
)
@click.option(
    "--customers",
    type=click.IntRange(min=100),
    default=20000,
    show_default=True,
    help="Synthetic customers to generate when --data is not given.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option("--author", default=None, help="Recorded author [default: $MODEL_AUTHOR or login].")
def train(data: Path | None, customers: int, seed: int, author: str | None) -> None:
    """Train a churn model, evaluate it on a holdout and register it.

    Aliases are not moved: promote the new version with `streamer models promote`.
    """
    registry = registry_from_env()
    source = str(data) if data else f"{customers} synthetic customers (seed {seed})"
    click.echo(f"training on {source} ...", err=True)
    try:
        meta = train_and_register(
            registry, data=data, n_customers=customers, seed=seed, author=author
        )
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
        champion = registry.aliases().get("champion")
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    if champion:
        click.echo(
            f"serving: champion {champion} (promote with: streamer models promote {meta.version})"
        )
    else:
        click.echo(f"serving: latest version {meta.version} (no champion alias set)")
