"""`python -m benchmarks` (what `make bench` runs); bad input gets one line, not a traceback."""

from __future__ import annotations

from functools import partial

from benchmarks.command import bench
from streamer.commands.common import exit_with_one_line_errors


def main() -> None:
    run = partial(bench.main, prog_name="python -m benchmarks", standalone_mode=False)
    exit_with_one_line_errors("benchmarks", run)


if __name__ == "__main__":
    main()
