"""Generated traffic: synthetic customer events published at a steady rate."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from models.synthetic import EventGenerator, generate_customers
from topics.events import utc_now_ms
from topics.producer import EventProducer

TICK_S = 0.05


@dataclass
class TrafficReport:
    """What a traffic run sent."""

    sent: int
    seconds: float
    delivered: int
    failed: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def run_traffic(
    producer: EventProducer,
    generator: EventGenerator,
    *,
    rate: float,
    total: int | None = None,
    duration_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int, float], None] | None = None,
) -> TrafficReport:
    """Publish events at `rate` per second (0 = as fast as possible) until a limit is hit."""
    started = time.monotonic()
    sent = 0
    last_report = started
    while not should_stop():
        elapsed = time.monotonic() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        if total is not None and sent >= total:
            break
        due = int(elapsed * rate) + 1 if rate > 0 else sent + 1000
        if total is not None:
            due = min(due, total)
        if due <= sent:
            time.sleep(TICK_S)
            continue
        for event in generator.batch(due - sent, utc_now_ms()):
            producer.send(event)
        sent = due
        now = time.monotonic()
        if on_progress is not None and now - last_report >= 1.0:
            on_progress(sent, now - started)
            last_report = now
    producer.flush()
    seconds = time.monotonic() - started
    return TrafficReport(sent, seconds, producer.stats.delivered, producer.stats.failed)


def default_generator(customers: int, seed: int | None) -> EventGenerator:
    """An event generator over `customers` synthetic customers (ids c-0 ... c-N-1)."""
    return EventGenerator(generate_customers(customers, seed=7), seed=seed)
