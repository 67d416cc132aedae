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


def test_a_topic_missing_from_the_metadata_snapshot_has_no_partition_count_yet() -> None:
    # aiokafka's snapshot says 0 for a subscribed topic its metadata did not list yet; Faust
    # must see "not known" (None), not a count that fails its changelog partition check.
    from types import SimpleNamespace

    from streamer.worker.app import app

    thread = app.consumer._thread  # type: ignore[attr-defined]
    snapshot = {"events": 4, "changelog-created-just-now": 0}
    thread._consumer = SimpleNamespace(_coordinator=SimpleNamespace(_metadata_snapshot=snapshot))
    try:
        assert thread.topic_partitions("events") == 4
        assert thread.topic_partitions("changelog-created-just-now") is None
        assert thread.topic_partitions("never-subscribed") is None
    finally:
        thread._consumer = None
