"""What the benchmark measures with: completion marks, steady-state rates, percentiles,
a predictions-topic reader, a CPU/RSS sampler of worker processes, the progress of a
worker's stages over time and the page views in customers' profiles."""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamer.store.profiles import COUNTER_FIELD, PROFILE_PREFIX
from topics.events import EventType
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


class Completions(Protocol):
    """Where a contender's finished events show: prediction records, or a floor's take
    marks. `since_ms` keeps events stamped (or taken) at or after that epoch millisecond:
    a burst's or a live run's own events, not its warm-up."""

    def completed(self, since_ms: int = 0) -> int: ...

    def marks(self, since_ms: int = 0) -> list[Mark]: ...

    def stop(self) -> None: ...


class PredictionReader(threading.Thread):
    """Reads a predictions topic from the start, until stopped, and keeps (event_ts,
    scored_at) of the first record of every event.

    An event scored again (redelivered after a rebalance moved its partition before its
    offset was committed) is counted in `duplicates`, not in `completed`: a run is done
    when every event is scored, and a repeat is work done twice, not throughput.

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

    def completed(self, since_ms: int = 0) -> int:
        """Events scored whose event time is not older than `since_ms`."""
        if since_ms <= 0:
            return len(self.records)
        return sum(1 for ts, _ in list(self.records) if ts >= since_ms)

    def marks(self, since_ms: int = 0) -> list[Mark]:
        """Completions per `scored_at` millisecond."""
        per_ms = Counter(scored for ts, scored in list(self.records) if ts >= since_ms)
        return [(ms / 1000, n) for ms, n in per_ms.items()]

    def latencies_ms(self, since_ms: int = 0) -> list[float]:
        """scored_at - event ts of every record whose event is not older than `since_ms`."""
        return [float(scored - ts) for ts, scored in list(self.records) if ts >= since_ms]

    def first_scored_at(self) -> float | None:
        """When the first record was scored (epoch seconds); None before any."""
        first = min((scored for _, scored in list(self.records)), default=None)
        return None if first is None else first / 1000


class MarksFile:
    """The marks a floor worker appends, one line ("epoch_seconds count") per batch taken."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def marks(self, since_ms: int = 0) -> list[Mark]:
        if not self.path.exists():
            return []
        marks: list[Mark] = []
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and float(parts[0]) * 1000 >= since_ms:
                marks.append((float(parts[0]), int(parts[1])))
        return marks

    def completed(self, since_ms: int = 0) -> int:
        return sum(n for _, n in self.marks(since_ms))

    def stop(self) -> None:
        """Nothing to stop: the file is read on demand."""


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


# -- stage progress ----------------------------------------------------------------------

Probe = Callable[[], int | None]  # how far a stage has come; None when it cannot tell now


class RecordsWritten:
    """A probe: records written to a topic so far, the sum of its partitions' high
    watermarks (Tansu under-reports them, see `PredictionReader`; exact on Apache Kafka
    without transactions, whose commit markers take offsets too)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-marks-{time.monotonic_ns()}"}
        )
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]

    def __call__(self) -> int | None:
        try:
            return sum(
                self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)[1]
                for tp in self._partitions
            )
        except KafkaException:
            return None

    def first_written_at(self, timeout: float = 10.0) -> float | None:
        """When the topic's earliest record was written (its timestamp, epoch seconds)."""
        with_records = []
        for tp in self._partitions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
            if high > low:
                with_records.append(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
        self._consumer.assign(with_records)
        firsts: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(firsts) < len(with_records) and time.monotonic() < deadline:
            for message in self._consumer.consume(100, timeout=0.5):
                if message.error() is None and message.partition() not in firsts:
                    firsts[message.partition()] = message.timestamp()[1] / 1000
        self._consumer.unassign()
        return min(firsts.values(), default=None)

    def close(self) -> None:
        self._consumer.close()


def page_views_counted(base_url: str) -> Probe:
    """A probe: page views a worker's counting stage has counted in its partitions (the
    totals of its `/api/page-views?scope=local`)."""
    url = f"{base_url}/api/page-views?scope=local"

    def probe() -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                pages = orjson.loads(response.read())["pages"]
        except (OSError, ValueError, KeyError):
            return None
        return sum(int(page["total"]) for page in pages)

    return probe


class StageWatch(threading.Thread):
    """Samples how far a worker's stages have come, a few times a second until stopped:
    "enriched" (records in the enriched topic), "scored" and "counted" (the probes given).
    """

    def __init__(
        self, enriched: RecordsWritten, scored: Probe, counted: Probe, interval: float = 0.2
    ) -> None:
        super().__init__(name="stage-watch", daemon=True)
        self._enriched = enriched
        self._probes: dict[str, Probe] = {
            "enriched": enriched,
            "scored": scored,
            "counted": counted,
        }
        self._interval = interval
        self._stop_event = threading.Event()
        self.samples: list[tuple[float, dict[str, int | None]]] = []

    def run(self) -> None:
        while True:
            moment = time.time()
            self.samples.append((moment, {name: probe() for name, probe in self._probes.items()}))
            if self._stop_event.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def report(
        self, ready_at: float, first_scored_at: float | None, events: int, page_views: int
    ) -> StageReport:
        """The stages' progress through a backlog of `events` (`page_views` of them page
        views), timed from the worker's ready; call after `stop`."""
        first_enriched_at = self._enriched.first_written_at()
        self._enriched.close()
        return stage_report(
            ready_at, first_enriched_at, first_scored_at, self.samples, events, page_views
        )


# The stage spread: when enrichment has written this share of the backlog, the share the
# later stages have finished. Stages that progress together are near it; a stage that
# waits for enrichment to finish the backlog is near 0.
SPREAD_AT = 0.5


@dataclass(frozen=True)
class StageReport:
    """How a worker's stages progressed through a backlog, timed from its ready."""

    ready_at: float  # epoch seconds
    first_enriched_s: float | None  # after ready
    first_score_s: float | None
    spread_at_s: float | None  # when enrichment reached SPREAD_AT of the backlog
    scored_share: float | None  # of the backlog, at that moment
    counted_share: float | None  # of its page views, at that moment
    samples: list[tuple[float, dict[str, int | None]]]

    def as_json(self) -> dict[str, Any]:
        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "ready_at": round(self.ready_at, 3),
            "first_enriched_s": rounded(self.first_enriched_s, 3),
            "first_score_s": rounded(self.first_score_s, 3),
            "spread_at_enriched_share": SPREAD_AT,
            "spread_at_s": rounded(self.spread_at_s, 2),
            "scored_share": rounded(self.scored_share, 4),
            "counted_share": rounded(self.counted_share, 4),
            # Seconds after ready, then each probe's value (null: no answer then).
            "progress": [
                {"s": round(moment - self.ready_at, 2), **values} for moment, values in self.samples
            ],
        }


def stage_report(
    ready_at: float,
    first_enriched_at: float | None,
    first_scored_at: float | None,
    samples: Sequence[tuple[float, dict[str, int | None]]],
    events: int,
    page_views: int,
) -> StageReport:
    """Stage progress of a backlog of `events` (`page_views` of them page views), sampled
    as "enriched", "scored" and "counted"; the spread is read at the first sample where
    enrichment had written SPREAD_AT of the backlog."""

    def after_ready(moment: float | None) -> float | None:
        return None if moment is None else moment - ready_at

    at: tuple[float, dict[str, int | None]] | None = next(
        (sample for sample in samples if (sample[1].get("enriched") or 0) >= SPREAD_AT * events),
        None,
    )
    scored = counted = None
    if at is not None:
        scored = (at[1].get("scored") or 0) / events
        views = at[1].get("counted")
        counted = views / page_views if views is not None and page_views else None
    return StageReport(
        ready_at=ready_at,
        first_enriched_s=after_ready(first_enriched_at),
        first_score_s=after_ready(first_scored_at),
        spread_at_s=None if at is None else at[0] - ready_at,
        scored_share=scored,
        counted_share=counted,
        samples=list(samples),
    )


# -- profiles --------------------------------------------------------------------------


class ProfilePageViews:
    """Whether customers' profiles hold page views sent to them: each `page_views`
    counter against what it was when this was made plus the views sent since."""

    FIELD = COUNTER_FIELD[EventType.PAGE_VIEW]

    def __init__(self, redis_url: str, sent: Mapping[str, int]) -> None:
        self._client = redis.Redis.from_url(redis_url, decode_responses=True)
        self._customers = list(sent)
        baseline = self._read()
        self._expected = [base + sent[c] for base, c in zip(baseline, self._customers, strict=True)]

    def _read(self) -> list[int]:
        pipe = self._client.pipeline(transaction=False)
        for customer in self._customers:
            pipe.hget(f"{PROFILE_PREFIX}{customer}", self.FIELD)
        return [int(value or 0) for value in pipe.execute()]

    def missing(self) -> int:
        """Customers whose counter does not hold every view sent to them yet."""
        now = self._read()
        return sum(1 for have, want in zip(now, self._expected, strict=True) if have < want)

    def close(self) -> None:
        self._client.close()


def _interpolate(samples: Sequence[tuple[float, float, int]], moment: float) -> float:
    if moment <= samples[0][0]:
        return samples[0][1]
    for (t0, c0, _), (t1, c1, _) in itertools.pairwise(samples):
        if t0 <= moment <= t1:
            return c0 + (c1 - c0) * (moment - t0) / max(t1 - t0, 1e-9)
    return samples[-1][1]
