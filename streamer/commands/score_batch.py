"""``streamer score-batch``: re-score every stored profile with the champion."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import click
import redis
from threadpoolctl import threadpool_limits

from models.registry import ModelRegistry, RegistryError
from streamer.commands.common import load_settings
from streamer.connections import redis_client_options
from streamer.store.batch_scoring import (
    DEFAULT_PAGE_SIZE,
    PROGRESS_KEY,
    BatchScoringError,
    progress_summary,
    score_profiles,
)


def _interrupt_on_sigterm() -> None:
    # SIGTERM (e.g. a job scheduler's stop) ends the run like Ctrl-C: the checkpoint of
    # the last finished page is already stored, so a later run resumes from it.
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.command("score-batch")
@click.option(
    "--model",
    "model_ref",
    default=None,
    help="Version, alias or 'latest' to score with [default: the champion, else the latest].",
)
@click.option(
    "--export",
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    default=None,
    help="Also write customer_id,churn_score,model_version rows to this CSV file.",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1, max=100_000),
    default=DEFAULT_PAGE_SIZE,
    help="Profiles per SCAN page (one model call and one write round trip per page).",
)
@click.option(
    "--restart",
    is_flag=True,
    help=f"Ignore the progress of an unfinished run (Redis key {PROGRESS_KEY}).",
)
def score_batch(model_ref: str | None, export: Path | None, page_size: int, restart: bool) -> None:
    """Re-score every stored profile (profile:*) and write the scores back.

    A batch score counts as of the profile's last event, so it never replaces a score
    the stream wrote for newer events. An interrupted run resumes where it stopped when
    run again with the same model and --export file.
    """
    settings = load_settings()
    registry = ModelRegistry(settings.models.registry)
    try:
        version = registry.resolve(model_ref) if model_ref else registry.serving_version()
        if version is None:
            raise click.ClickException(
                f"no models registered in {registry.root}: run `streamer train` first"
            )
        model = registry.load(version)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    client = redis.Redis.from_url(
        settings.redis.url, decode_responses=True, **redis_client_options(settings.redis)
    )
    _interrupt_on_sigterm()
    try:
        # OpenMP threads cost more than they give on pages of this size.
        with threadpool_limits(limits=1):
            result = score_profiles(
                client,
                model,
                page_size=page_size,
                export=export,
                restart=restart,
                notify=lambda line: click.echo(line, err=True),
            )
    except KeyboardInterrupt:
        try:
            done = progress_summary(client).get("scored", "0")
        except redis.RedisError:
            done = "?"
        click.echo(
            f"streamer: interrupted after {done} profiles; progress is kept in "
            f"{PROGRESS_KEY}: run the same command again to resume",
            err=True,
        )
        sys.exit(130)
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(
            f"score-batch against {settings.redis.url_redacted} failed: {exc}"
        ) from None
    except BatchScoringError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    resumed = " (resumed)" if result.resumed else ""
    click.echo(
        f"scored {result.scored} profiles with {result.model_version}{resumed}: "
        f"{result.written} written, {result.skipped} skipped (newer stream score)"
    )
    click.echo(
        f"{result.scored_this_run} profiles in {result.elapsed_s:.1f} s: "
        f"{result.rate:,.0f} profiles/s"
    )
    if export is not None:
        click.echo(f"exported to {export}")
