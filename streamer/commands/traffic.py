"""`streamer produce`: publish generated customer events to Kafka."""

from __future__ import annotations

import signal
from types import FrameType

import click

from streamer.commands.common import (
    customers_option,
    duration_option,
    ensure_service_topics,
    load_settings,
    rate_option,
)
from streamer.connections import librdkafka_config
from streamer.devstack.traffic import default_generator, run_traffic
from topics.producer import EventProducer


@click.command()
@rate_option(500.0)
@customers_option(2000)
@click.option(
    "--events",
    "total",
    type=click.IntRange(min=1),
    default=None,
    help="stop after this many events",
)
@duration_option
@click.option("--seed", type=int, default=None, help="fixed seed for reproducible traffic")
def produce(
    rate: float, customers: int, total: int | None, duration: float | None, seed: int | None
) -> None:
    """Publish generated events for customers c-0 ... c-N-1 until stopped."""
    settings = load_settings()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Brokers without auto-creation would refuse every event.
    ensure_service_topics(settings)
    producer = EventProducer(
        settings.kafka.broker,
        topic_prefix=settings.topics.prefix,
        config=librdkafka_config(settings.kafka),
    )
    report = run_traffic(
        producer,
        default_generator(customers, seed),
        rate=rate,
        total=total,
        duration_s=duration,
        should_stop=lambda: stopping,
        on_progress=lambda sent, secs: click.echo(f"sent {sent:,} events ({sent / secs:,.0f}/s)"),
    )
    click.echo(
        f"sent {report.sent:,} events in {report.seconds:.1f}s ({report.rate:,.0f}/s); "
        f"delivered {report.delivered:,}, failed {report.failed:,}"
    )
    if report.failed:
        raise click.ClickException(
            f"{report.failed} deliveries failed: {producer.stats.last_error}"
        )
