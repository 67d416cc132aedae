"""The worker's Faust app, built from the settings: `faust -A streamer.app worker -l info`.

Importing this module reads the settings (a bad one raises pydantic's ValidationError, which
the entry point `streamer.app` turns into one line) and opens nothing: Redis, the model and
every connection are opened by `streamer.worker.runtime.Runtime` when the worker starts.
Agents, tables and web views live in their own modules, found by autodiscovery.
"""

from __future__ import annotations

from streamer.settings import get_settings
from streamer.worker.faust_app import StreamerApp, faust_app_options

settings = get_settings()

app = StreamerApp(
    settings.group_id,
    **faust_app_options(settings),
    autodiscover=["streamer.worker.agents", "streamer.worker.web"],
    origin="streamer",
    processing_guarantee=settings.worker.processing_guarantee,
    topic_allow_declare=True,
    key_serializer="raw",
    value_serializer="raw",
    producer_linger=0.005,
    # Faust's default waits at every rebalance until each in-flight message is acked, and
    # hangs for good when the rebalance dropped a queued copy of a message that two agents
    # read (faust-streaming#133). Not waiting is safe here: offsets still advance only past
    # acked events, and redelivered events are not counted twice (see streamer.store.profiles).
    stream_wait_empty=False,
    web_enabled=True,
)


def main() -> None:
    """Console entry point equivalent to `faust -A streamer.app`."""
    app.main()
