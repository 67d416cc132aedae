"""`streamer`: the command line. Bad input gets one line on stderr, never a traceback."""

from __future__ import annotations

from functools import partial
from typing import Any

import click

from streamer.commands.common import CONTEXT_SETTINGS, exit_with_one_line_errors
from streamer.commands.dev import dev
from streamer.commands.dlq import dlq
from streamer.commands.profiles import profiles
from streamer.commands.topics import topics
from streamer.commands.traffic import produce
from streamer.commands.worker import worker


class OneLineErrors(click.Group):
    """A click group that reports usage and runtime errors as a single line."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        exit_with_one_line_errors("streamer", partial(super().main, *args, **kwargs))


@click.group(cls=OneLineErrors, context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """Streaming churn prediction: Faust agents over Kafka, profiles in Redis."""


for command in (dev, worker, topics, profiles, produce, dlq):
    cli.add_command(command)


def _add_optional_commands() -> None:
    from streamer.commands.demo import demo
    from streamer.commands.models import models
    from streamer.commands.score_batch import score_batch
    from streamer.commands.train import train

    for command in (demo, models, score_batch, train):
        cli.add_command(command)


_add_optional_commands()


def main() -> None:
    """Console script entry point."""
    cli()
