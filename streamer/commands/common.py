"""What commands share: settings and topics with one-line errors, one-line error exits,
and the options several commands take."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from click.decorators import FC
from confluent_kafka import KafkaException
from pydantic import ValidationError

from streamer.connections import librdkafka_config
from streamer.devstack import BROKER_CHOICES
from streamer.settings import Settings, settings_error_line
from topics.admin import TopicsMissing, ensure_topics

# Every command shows its options' defaults in --help and takes -h.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "show_default": True}


def load_settings() -> Settings:
    """The settings, or a one-line error naming the bad environment variable (the same
    line the worker prints)."""
    try:
        return Settings.from_env()
    except ValidationError as exc:
        raise click.ClickException(settings_error_line(exc)) from None


def ensure_service_topics(settings: Settings) -> list[str]:
    """Create the service's missing topics, as the worker does at start; returns the names
    created. A broker that refuses or cannot be reached is a one-line error."""
    try:
        return ensure_topics(
            settings.kafka.broker,
            settings.topics.prefix,
            settings.topics.partitions,
            settings.topics.replication_factor,
            config=librdkafka_config(settings.kafka),
        )
    except (KafkaException, TopicsMissing) as exc:
        raise click.ClickException(f"KAFKA_BROKER {settings.kafka.broker}: {exc}") from None


def exit_with_one_line_errors(name: str, run: Callable[[], object]) -> NoReturn:
    """Run a click command's `main(standalone_mode=False)` and exit with its code; usage and
    runtime errors become one `NAME: error: ...` line on stderr, never a traceback."""
    try:
        result = run()
    except click.exceptions.Abort:
        click.echo(f"{name}: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"{name}: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


broker_option = click.option(
    "--broker",
    type=click.Choice(BROKER_CHOICES),
    default="auto",
    help="kafka: Apache Kafka (Java 17+ and Maven, or cached jars); tansu: the embedded "
    "Tansu; auto: Kafka where it can run, else Tansu",
)

duration_option = click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="stop after this many seconds (default: until Ctrl-C)",
)


def customers_option(
    default: int, *, minimum: int = 1, help: str = "synthetic customers, ids c-0 ... c-N-1"
) -> Callable[[FC], FC]:
    """--customers: how many (synthetic) customers a command works with."""
    return click.option("--customers", type=click.IntRange(min=minimum), default=default, help=help)


def rate_option(default: float) -> Callable[[FC], FC]:
    """--rate: events per second of generated traffic."""
    return click.option(
        "--rate",
        type=click.FloatRange(min=0),
        default=default,
        help="events per second (0: as fast as possible)",
    )
