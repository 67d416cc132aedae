"""``streamer models``: list, inspect, promote and roll back registered model versions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from models.aliases import CHAMPION, ROLES, Role
from models.registry import ModelRegistry, RegistryError
from streamer.commands.common import load_settings

_COLUMNS = ("VERSION", "CREATED_AT", "MODEL_TYPE", "ROC_AUC", "ALIASES")


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Report registry failures (unknown version, refused model, ...) as one line."""
    try:
        yield
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # e.g. $MODEL_REGISTRY names a file or an unreadable directory
        raise click.ClickException(f"cannot read registry: {exc}") from None


def _rows(registry: ModelRegistry) -> list[tuple[str, ...]]:
    by_version: dict[str, list[str]] = {}
    for alias, version in registry.aliases().items():
        by_version.setdefault(version, []).append(alias)
    rows: list[tuple[str, ...]] = []
    for version in registry.versions():
        aliases = ",".join(by_version.get(version, [])) or "-"
        try:
            meta = registry.metadata(version)
        except RegistryError:
            # One broken version must not hide the others from the listing.
            rows.append((version, "?", "<invalid metadata>", "?", aliases))
            continue
        rows.append(
            (
                version,
                meta.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                meta.model_type,
                f"{meta.metrics.roc_auc:.3f}",
                aliases,
            )
        )
    return rows


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (_COLUMNS, *rows)) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (_COLUMNS, *rows)
    )


@click.group("models")
def models() -> None:
    """Inspect and manage the model registry ($MODEL_REGISTRY, default ./model-registry)."""


@models.command("list")
def list_models() -> None:
    """List registered versions, newest last, with their aliases."""
    registry = ModelRegistry(load_settings().models.registry)
    with _one_line_errors():
        rows = _rows(registry)
        if not rows:
            click.echo(f"no models registered in {registry.root}")
            return
        click.echo(_table(rows))
        serving = registry.serving_versions()
    how = "champion" if serving.champion_is_alias else "latest; no champion alias set"
    click.echo(f"serving: {serving.champion} ({how})")


@models.command("show")
@click.argument("version")
def show(version: str) -> None:
    """Print a version's metadata as JSON (VERSION may be an alias or 'latest')."""
    registry = ModelRegistry(load_settings().models.registry)
    with _one_line_errors():
        meta = registry.metadata(registry.resolve(version))
    click.echo(meta.to_json(), nl=False)


@models.command("promote")
@click.argument("version")
@click.option(
    "--as",
    "alias",
    type=click.Choice(ROLES),
    default=CHAMPION,
    help="Alias to point at VERSION.",
)
def promote(version: str, alias: Role) -> None:
    """Point an alias at VERSION after checking that the model loads and verifies."""
    registry = ModelRegistry(load_settings().models.registry)
    with _one_line_errors():
        resolved = registry.resolve(version)
        # Refuse here rather than have every serving process refuse it later.
        registry.load(resolved)
        previous = registry.aliases().get(alias)
        registry.set_alias(alias, resolved)
    was = f" (was {previous})" if previous else ""
    click.echo(f"{alias} -> {resolved}{was}")


@models.command("rollback")
def rollback() -> None:
    """Point champion back at the previous champion."""
    registry = ModelRegistry(load_settings().models.registry)
    with _one_line_errors():
        current = registry.aliases().get(CHAMPION)
        restored = registry.rollback()
    click.echo(f"champion -> {restored} (was {current or 'unset'})")


@models.command("unset")
@click.argument("alias", type=click.Choice(ROLES))
def unset(alias: Role) -> None:
    """Remove an alias, e.g. end a champion/challenger comparison with `unset challenger`.

    Without a champion alias the newest version serves.
    """
    registry = ModelRegistry(load_settings().models.registry)
    with _one_line_errors():
        previous = registry.aliases().get(alias)
        registry.remove_alias(alias)
    click.echo(f"{alias} unset (was {previous or 'unset'})")
