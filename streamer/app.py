"""The worker's entry point, as ops run it: `faust -A streamer.app worker -l info`.

The app itself, its agents, tables and routes live in `streamer.worker`. A bad setting stops
the process here with one line naming the variable, not a traceback.
"""

import sys

from pydantic import ValidationError

from streamer.settings import settings_error_line

try:
    from streamer.worker.app import app, main
except ValidationError as exc:
    sys.stderr.write(f"streamer: error: {settings_error_line(exc)}\n")
    raise SystemExit(2) from None

__all__ = ["app", "main"]
