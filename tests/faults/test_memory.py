"""Bounded memory under a burst: a backlog of 1,000,000 events, the worker's RSS sampled.

Opt-in (minutes long): `.venv/bin/pytest -m slow -s tests/faults/test_memory.py`.
Set MEMORY_EVENTS to change the backlog size.
"""

from __future__ import annotations

import os
import threading
import time

import orjson
import psutil
import pytest
from confluent_kafka import Producer

from tests.support.faults import PAGES, TS, Scenario
from topics.admin import ensure_topics

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EVENTS = int(os.environ.get("MEMORY_EVENTS", "1000000"))
CUSTOMERS = 20_000
# Generous: the point is that memory stops growing with the backlog, not a tight figure.
RSS_LIMIT_MB = 1024


def _publish_backlog(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
        }
    )
    for i in range(count):
        customer = f"m-c{i % CUSTOMERS}"
        value = orjson.dumps(
            {
                "event_id": f"m-{i}",
                "type": "page_view",
                "customer_id": customer,
                "ts": TS + i,
                "page": PAGES[i % len(PAGES)],
            }
        )
        while True:
            try:
                producer.produce(topic, key=customer.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0


@pytest.mark.timeout(3600)
def test_backlog_of_a_million_events_keeps_worker_memory_bounded(scenario: Scenario) -> None:
    ensure_topics(scenario.stack.kafka_broker, scenario.prefix, 4)
    started = time.monotonic()
    _publish_backlog(scenario.stack.bootstrap_servers, scenario.source, EVENTS)
    published_s = time.monotonic() - started
    measure = scenario.measure
    worker = scenario.worker(scenario.env())
    samples: list[tuple[float, int, int]] = []  # (seconds, counted, rss bytes)
    stop = threading.Event()

    def sample(pid: int) -> None:
        process = psutil.Process(pid)
        t0 = time.monotonic()
        while not stop.wait(1.0):
            try:
                samples.append((time.monotonic() - t0, -1, process.memory_info().rss))
            except psutil.Error:
                return

    try:
        worker.start()
        assert worker.process is not None
        sampler = threading.Thread(target=sample, args=(worker.process.pid,), daemon=True)
        sampler.start()
        t0 = time.monotonic()
        progress: list[tuple[float, int]] = []
        while True:
            counted = measure.counted()
            progress.append((time.monotonic() - t0, counted))
            if counted >= EVENTS:
                break
            assert worker.process.poll() is None, worker.log_tail()
            assert time.monotonic() - t0 < 3000, f"only {counted} counted"
            time.sleep(5)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        worker.stop()
    rss_mb = [rss / 2**20 for _, _, rss in samples]
    half = len(rss_mb) // 2
    first_half, second_half = max(rss_mb[:half]), max(rss_mb[half:])
    print(
        f"MEMORY backlog={EVENTS} published in {published_s:.0f}s; worked through in "
        f"{elapsed:.0f}s ({EVENTS / elapsed:,.0f} events/s); worker RSS start "
        f"{rss_mb[0]:.0f} MB, peak {max(rss_mb):.0f} MB (first half {first_half:.0f} MB, "
        f"second half {second_half:.0f} MB), end {rss_mb[-1]:.0f} MB; "
        f"{len(samples)} samples"
    )
    counted, lost, double = measure.lost_and_double(
        [
            {"customer_id": f"m-c{i % CUSTOMERS}", "type": "page_view", "event_id": f"m-{i}"}
            for i in range(EVENTS)
        ]
    )
    assert (counted, lost, double) == (EVENTS, 0, 0)
    assert max(rss_mb) < RSS_LIMIT_MB
    # Bounded: the second half of the backlog does not raise the peak materially.
    assert second_half <= first_half * 1.2 + 50
