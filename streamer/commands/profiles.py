"""`streamer profiles load FILE.csv`: load static profile attributes into Redis."""

from __future__ import annotations

from pathlib import Path

import click
import redis.exceptions

from streamer.commands.common import load_settings
from streamer.connections import redis_client_options
from streamer.settings import Settings
from streamer.store.profile_csv import ProfileFileError, RowError, StaticProfile, read_profiles
from streamer.store.profiles import load_profiles

MAX_ERRORS_SHOWN = 20


def load_file(path: Path, settings: Settings) -> tuple[int, list[RowError]]:
    """Load every good row of a profile CSV; returns (loaded, errors)."""
    errors: list[RowError] = []
    good: list[StaticProfile] = []
    for item in read_profiles(path):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            good.append(item)
    loaded = load_profiles(
        settings.redis.url,
        (profile.model_dump() for profile in good),
        client_options=redis_client_options(settings.redis),
    )
    return loaded, errors


@click.group()
def profiles() -> None:
    """Manage customer profiles."""


@profiles.command("load")
@click.argument("file", type=click.Path(path_type=Path))
def load(file: Path) -> None:
    """Load static attributes (customer_id,plan,contract,tenure_months,monthly_spend,country)."""
    settings = load_settings()
    try:
        loaded, errors = load_file(file, settings)
    except ProfileFileError as exc:
        raise click.ClickException(str(exc)) from None
    except redis.exceptions.AuthenticationError as exc:
        raise click.ClickException(
            f"REDIS_URL {settings.redis.url_redacted}: authentication failed "
            f"(REDIS_PASSWORD/REDIS_USERNAME): {exc}"
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise click.ClickException(
            f"REDIS_URL {settings.redis.url_redacted} unreachable: {exc}"
        ) from None
    except redis.exceptions.RedisError as exc:
        raise click.ClickException(f"REDIS_URL {settings.redis.url_redacted}: {exc}") from None
    for error in errors[:MAX_ERRORS_SHOWN]:
        click.echo(f"skipped {file}: {error}", err=True)
    if len(errors) > MAX_ERRORS_SHOWN:
        click.echo(f"... and {len(errors) - MAX_ERRORS_SHOWN} more bad rows", err=True)
    click.echo(f"loaded {loaded} profile(s) from {file}; {len(errors)} bad row(s) skipped")
    if errors:
        raise SystemExit(2 if loaded == 0 else 0)
