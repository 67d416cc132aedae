"""`streamer topics create`: create the service's topics (workers also create them)."""

from __future__ import annotations

import click

from streamer.commands.common import ensure_service_topics, load_settings


@click.group()
def topics() -> None:
    """Manage the service's topics."""


@topics.command("create")
def create() -> None:
    """Create customer-events, -enriched, churn-predictions and the DLQ if missing."""
    created = ensure_service_topics(load_settings())
    click.echo(f"created {len(created)} topic(s): {', '.join(created) or 'none (all existed)'}")
