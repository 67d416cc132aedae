"""The worker's entry point, as ops run it: `faust -A streamer.app worker -l info`.

The app itself, its agents, tables and routes live in `streamer.worker`.
"""

from streamer.worker.app import app, main

__all__ = ["app", "main"]
