"""Helpers shared by commands: settings with one-line errors."""

from __future__ import annotations

import click
from pydantic import ValidationError

from streamer.settings import Settings, get_settings, settings_error_line


def load_settings() -> Settings:
    """The settings, or a one-line error naming the bad environment variable (the same
    line the worker prints)."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise click.ClickException(settings_error_line(exc)) from None
