"""`streamer worker`: the same as `faust -A streamer.app worker -l info`."""

from __future__ import annotations

import os
import sys

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("faust_args", nargs=-1, type=click.UNPROCESSED)
def worker(faust_args: tuple[str, ...]) -> None:
    """Run a Faust worker; extra arguments go to `faust worker` (e.g. --web-port 6067)."""
    args = ["faust", "-A", "streamer.app", "worker", "-l", "info", *faust_args]
    os.execvp(sys.executable, [sys.executable, "-m", "faust", *args[1:]])
