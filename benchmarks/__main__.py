"""`python -m benchmarks` (what `make bench` runs); bad input gets one line, not a traceback."""

from __future__ import annotations

import sys

import click

from benchmarks.command import bench


def main() -> None:
    try:
        bench.main(prog_name="python -m benchmarks", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("benchmarks: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"benchmarks: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
