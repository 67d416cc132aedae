"""The worker's consumer takes its fetch wait from STREAMER_FETCH_MAX_WAIT, not Faust's 1.5 s."""

from __future__ import annotations

import asyncio

from streamer.settings import get_settings


def test_worker_consumer_fetch_wait_follows_the_setting() -> None:
    from streamer.worker.app import app

    async def created_wait_ms() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    wait_ms = asyncio.run(created_wait_ms())
    assert wait_ms == int(get_settings().worker.fetch_max_wait * 1000)
    assert wait_ms != 1500  # Faust's own
