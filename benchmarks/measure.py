"""What the benchmark measures with: completion marks, steady-state rates, percentiles,
a predictions-topic reader and a CPU/RSS sampler of worker processes."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from topics.wire import parse_prediction

# The first and last tenth of a run are start-up (assignment, first fetches) and drain
# (a last partition finishing alone); the middle is the steady state being compared.
TRIM = 0.1
MIN_WINDOW_S = 0.5

Mark = tuple[float, int]  # (epoch seconds, events completed at that moment)


@dataclass(frozen=True)
class Window:
    """The steady-state part of a run: events completed between two moments."""

    start: float
    end: float
    events: int
    total: int

    @property
    def rate(self) -> float:
        return self.events / max(self.end - self.start, 1e-3)


def steady_window(marks: Iterable[Mark], started: float | None = None) -> Window:
    """The middle 80% of completions and the time they took; the whole run if that is too
    short to time (tiny runs), measured from `started` when given."""
    ordered = sorted(marks)
    total = sum(n for _, n in ordered)
    if total == 0:
        return Window(0.0, 0.0, 0, 0)
    cum = 0
    lo: Mark | None = None
    hi: Mark | None = None
    for moment, n in ordered:
        cum += n
        if lo is None and cum >= total * TRIM:
            lo = (moment, cum)
        if hi is None and cum >= total * (1 - TRIM):
            hi = (moment, cum)
    assert lo is not None and hi is not None
    if hi[0] - lo[0] >= MIN_WINDOW_S and hi[1] > lo[1]:
        return Window(lo[0], hi[0], hi[1] - lo[1], total)
    first = started if started is not None else ordered[0][0]
    return Window(first, ordered[-1][0], total, total)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) of a sample, in its own unit."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    ordered = sorted(values)
    last = len(ordered) - 1

    def rank(q: float) -> float:
        return float(ordered[min(last, round(q * last))])

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}


class PredictionReader(threading.Thread):
    """Reads a predictions topic from the start, until stopped, and keeps (event_ts,
    scored_at) of the first record of every event.

    An event scored again (redelivered after a rebalance moved its partition before its
    offset was committed) is counted in `duplicates`, not in `count`: a run is done when
    every event is scored, and a repeat is work done twice, not throughput.

    Two Tansu workarounds, harmless on Apache Kafka: partitions are assigned, not joined
    through a group (Tansu holds a new group's first join for half the session timeout), and
    the reader never stops at the high watermark (Tansu under-reports it, so a reader
    stopping there would miss records); the harness stops it once it has counted enough.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(name=f"reader-{topic}", daemon=True)
        self.records: list[tuple[int, int]] = []
        self.duplicates = 0
        self._seen: set[str] = set()
        self._stop_event = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-reader-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )

    @property
    def count(self) -> int:
        return len(self.records)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                for message in self._consumer.consume(2000, timeout=0.2):
                    if message.error() is not None:
                        continue
                    record = parse_prediction(message.value() or b"{}")
                    if record.event_id in self._seen:
                        self.duplicates += 1
                        continue
                    self._seen.add(record.event_id)
                    self.records.append((record.event_ts, record.scored_at))
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)

    def marks(self) -> list[Mark]:
        """Completions per `scored_at` millisecond."""
        per_ms: dict[int, int] = {}
        for _, scored_at in self.records:
            per_ms[scored_at] = per_ms.get(scored_at, 0) + 1
        return [(ms / 1000, n) for ms, n in per_ms.items()]

    def latencies_ms(self, since_ms: int = 0) -> list[float]:
        """scored_at - event ts of every record whose event is not older than `since_ms`."""
        return [float(scored - ts) for ts, scored in self.records if ts >= since_ms]


def read_marks_file(path: Path) -> list[Mark]:
    """Marks a floor worker appended ("epoch_seconds count" per line)."""
    if not path.exists():
        return []
    marks: list[Mark] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            marks.append((float(parts[0]), int(parts[1])))
    return marks


class ProcessSampler(threading.Thread):
    """Samples CPU seconds and RSS of worker processes a few times a second."""

    def __init__(self, pids: Sequence[int], interval: float = 0.2) -> None:
        super().__init__(name="sampler", daemon=True)
        import psutil  # a dev dependency: only the benchmark needs it

        self._psutil_error = psutil.Error
        self._processes = {pid: psutil.Process(pid) for pid in pids}
        self.samples: dict[int, list[tuple[float, float, int]]] = {pid: [] for pid in pids}
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self._interval):
                return

    def sample(self) -> None:
        for pid, process in self._processes.items():
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
            except self._psutil_error:
                continue
            self.samples[pid].append((time.time(), times.user + times.system, rss))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def peak_rss(self, pid: int) -> int:
        """The kernel's high-water mark (Linux) or the largest sample; call before exit."""
        status = Path(f"/proc/{pid}/status")
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return max((rss for _, _, rss in self.samples.get(pid, [])), default=0)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds all sampled processes spent between two moments (interpolated)."""
        return sum(
            _interpolate(samples, end) - _interpolate(samples, start)
            for samples in self.samples.values()
            if samples
        )


def _interpolate(samples: Sequence[tuple[float, float, int]], moment: float) -> float:
    if moment <= samples[0][0]:
        return samples[0][1]
    for (t0, c0, _), (t1, c1, _) in itertools.pairwise(samples):
        if t0 <= moment <= t1:
            return c0 + (c1 - c0) * (moment - t0) / max(t1 - t0, 1e-9)
    return samples[-1][1]
