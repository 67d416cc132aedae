"""Helpers shared by commands: settings with one-line errors."""

from __future__ import annotations

import click
from pydantic import ValidationError

from streamer.settings import Settings, get_settings


def load_settings() -> Settings:
    """The settings, or a one-line error naming the bad environment variable."""
    try:
        return get_settings()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]).upper() if error["loc"] else "settings"
        raise click.ClickException(f"{field}: {message}") from None
