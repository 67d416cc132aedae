"""What commands share: settings and topics with one-line errors, one-line error exits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

import click
from confluent_kafka import KafkaException
from pydantic import ValidationError

from streamer.settings import Settings, get_settings, settings_error_line
from topics.admin import TopicsMissing, ensure_topics


def load_settings() -> Settings:
    """The settings, or a one-line error naming the bad environment variable (the same
    line the worker prints)."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise click.ClickException(settings_error_line(exc)) from None


def ensure_service_topics(settings: Settings) -> list[str]:
    """Create the service's missing topics, as the worker does at start; returns the names
    created. A broker that refuses or cannot be reached is a one-line error."""
    try:
        return ensure_topics(
            settings.kafka_broker,
            settings.topic_prefix,
            settings.topic_partitions,
            settings.topic_replication_factor,
            config=settings.kafka_client_config(),
        )
    except (KafkaException, TopicsMissing) as exc:
        raise click.ClickException(f"KAFKA_BROKER {settings.kafka_broker}: {exc}") from None


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
