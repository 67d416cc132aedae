"""Contenders fed while they run: a burst, and a paced live load.

Each contender is started, made ready (the pipeline's `/ready`) and warmed up (its
warm-up events completed: partitions assigned, the model loaded, connections open)
before its load is sent, so the figures are what a producer sees from a running
service, with no start-up in them.

- **Burst**: `--burst-events` page views over `--burst-customers` customers, sent at
  once. Timed from the first send until every event is done: for the pipeline, the
  textbook and the Quix Streams peer, its prediction record exists and every page view
  is in its customer's profile (`page_views`); for the floor, it was taken. Every
  contender runs until the whole burst is done: the textbook's stages run one after the
  other (its first scores come once enrichment has taken the burst), so a capped rate
  would leave out that wait.
- **Live**: the pipeline fed at a steady rate; latency is event `ts` (stamped as sent)
  to `scored_at`.
"""

from __future__ import annotations

import importlib.util
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from confluent_kafka import Producer

from benchmarks.figures import Figures, timed_figures
from benchmarks.harness import Bench, BenchError, Kind, Launched, NotMeasured
from benchmarks.measure import PredictionReader, ProcessSampler, ProfilePageViews, percentiles
from models.synthetic import EventGenerator
from topics.events import EventType, utc_now_ms
from topics.producer import keyed_producer

WARMUP_EVENTS = 200
# A warm-up event lost (the textbook skips an event whose Redis call timed out) does not
# hold the run: it goes on this long after the first warm-up event completed.
WARMUP_CAP_S = 30.0
BURST_SEED = 11
# The pages of the burst: any path is a valid page view; a cancel page would only
# change scores, not the work.
BURST_PAGES = ("/home", "/pricing", "/docs", "/account", "/support", "/features")
# How long the profiles may trail the last prediction record before the burst fails.
PROFILE_GRACE_S = 30.0


def quix_peer_installed() -> bool:
    """Quix Streams and the peer module (`benchmarks/quix_peer.py`) are both there."""
    return all(importlib.util.find_spec(name) for name in ("quixstreams", "benchmarks.quix_peer"))


def burst_events(customers: int, count: int) -> list[dict[str, str]]:
    """`count` page views spread at random over customers c-0 .. c-{customers - 1}, in the
    contract's JSON (topics.events.PageView) but for `ts`, stamped when the burst is sent."""
    rng = random.Random(BURST_SEED)
    return [
        {
            "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
            "type": EventType.PAGE_VIEW.value,
            "customer_id": f"c-{rng.randrange(customers)}",
            "page": rng.choice(BURST_PAGES),
        }
        for _ in range(count)
    ]


@contextmanager
def running(
    bench: Bench, kind: Kind, prefix: str, redis_db: int, generator: EventGenerator
) -> Iterator[Launched]:
    """A contender of its own topics (`prefix`) and Redis database, ready and warmed up
    with the next events of `generator`; stopped on leaving."""
    bench.create_topics(prefix)
    launched = bench.launch(kind, prefix, redis_db)
    try:
        if launched.ready_route:
            bench.wait_ready(launched.children)
        # Warm-up: proves partitions are assigned and the model is loaded; a contender
        # without a ready route is running once it completes these.
        warmup = [
            (str(event["customer_id"]).encode(), orjson.dumps(event))
            for event in generator.batch(WARMUP_EVENTS, utc_now_ms())
        ]
        bench.produce(launched.input_topic, warmup)
        bench.wait_for(
            launched.output.completed,
            WARMUP_EVENTS,
            launched.children,
            what="warm-up",
            cap_s=WARMUP_CAP_S,
        )
        yield launched
    finally:
        bench.stop_all()
        launched.output.stop()


def run_burst(bench: Bench, kind: Kind, prefix: str, redis_db: int = 0) -> Figures:
    """One burst into a running contender, timed from its first send until it is done."""
    cfg = bench.config
    events = burst_events(cfg.burst_customers, cfg.burst_events)
    generator = EventGenerator(bench.customers, seed=BURST_SEED)
    with running(bench, kind, prefix, redis_db, generator) as launched:
        profiles = None
        if launched.redis_url is not None:
            sent = Counter(event["customer_id"] for event in events)
            profiles = ProfilePageViews(launched.redis_url, sent)
        sampler = ProcessSampler(launched.pids)
        sampler.start()
        try:
            first_send = _send_burst(bench, launched.input_topic, events)
            since_ms = int(first_send * 1000)
            bench.wait_for(
                lambda: launched.output.completed(since_ms),
                len(events),
                launched.children,
                what="burst events done",
            )
            profiles_at = None
            if profiles is not None:
                profiles_at = _profiles_hold_the_burst(profiles, launched)
            peak = max(sampler.peak_rss(pid) for pid in launched.pids)
        finally:
            sampler.stop()
            if profiles is not None:
                profiles.close()
        marks = launched.output.marks(since_ms)
    extra: dict[str, object] = {"sent": len(events), "customers": cfg.burst_customers}
    if profiles is not None:
        extra["profiles_checked"] = profiles_at is not None
    latency = None
    if isinstance(launched.output, PredictionReader):
        latency = percentiles(launched.output.latencies_ms(since_ms))
        extra["duplicates"] = launched.output.duplicates
    return timed_figures(
        marks,
        first_send,
        "first send",
        sampler,
        end=profiles_at,
        latency_ms=latency,
        peak_rss_mb=peak / 2**20,
        extra=extra,
    )


def run_quix_burst(bench: Bench, prefix: str, redis_db: int) -> Figures:
    """The burst into the Quix Streams peer, when it is installed. The peer is not ours:
    its failure is the row's ("failed", with the reason), not the whole run's."""
    if not quix_peer_installed():
        raise NotMeasured("not installed")
    try:
        return run_burst(bench, "quix", prefix, redis_db)
    except BenchError as exc:
        raise NotMeasured(f"failed: {exc}") from None


def _send_burst(bench: Bench, topic: str, events: list[dict[str, str]]) -> float:
    """Send every event at once, stamped with the moment of the first send (returned)."""
    producer = keyed_producer(
        bench.stack.bootstrap_servers, {"linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
    )
    producer.list_topics(topic, timeout=10)  # connected before the clock starts
    first_send = time.time()
    ts = int(first_send * 1000)
    messages = [
        (event["customer_id"].encode(), orjson.dumps({**event, "ts": ts})) for event in events
    ]
    bench.produce(topic, messages, producer)
    return first_send


def _profiles_hold_the_burst(profiles: ProfilePageViews, launched: Launched) -> float:
    """When every burst page view is in its customer's profile (epoch s): counters are
    written before the event is scored, so this holds at once unless a contender does it
    the other way round."""
    deadline = time.monotonic() + PROFILE_GRACE_S
    while (missing := profiles.missing()) > 0:
        if time.monotonic() > deadline:
            raise BenchError(
                f"{launched.children[0].name}: every burst event is scored, but {missing:,} "
                f"customers' profiles lack some of its page views after {PROFILE_GRACE_S:.0f}s"
            )
        time.sleep(0.05)
    return time.time()


def run_live(bench: Bench, rate: float, prefix: str, redis_db: int, seed: int) -> Figures:
    """The pipeline fed by a paced producer; latency of events stamped as sent."""
    generator = EventGenerator(bench.customers, seed=seed)
    with running(bench, "pipeline", prefix, redis_db, generator) as launched:
        # A low linger: the producer's wait counts in the latency.
        producer = keyed_producer(bench.stack.bootstrap_servers, {"linger.ms": 1})
        sampler = ProcessSampler(launched.pids)
        sampler.start()
        try:
            seconds = bench.config.live_seconds
            bench.say(f"  pacing {rate:,.0f} events/s for {seconds:.0f}s")
            first_send = time.time()
            since_ms = int(first_send * 1000)
            sent = _pace(producer, generator, launched.input_topic, rate, seconds)
            bench.wait_for(
                lambda: launched.output.completed(since_ms),
                sent,
                launched.children,
                what="scored",
            )
            peak = sampler.peak_rss(launched.pids[0])
        finally:
            sampler.stop()
        output = launched.output
        assert isinstance(output, PredictionReader)
        return timed_figures(
            output.marks(since_ms),
            first_send,
            "first send",
            sampler,
            latency_ms=percentiles(output.latencies_ms(since_ms)),
            peak_rss_mb=peak / 2**20,
            extra={"target_rate": round(rate, 1), "sent": sent, "duplicates": output.duplicates},
        )


def _pace(
    producer: Producer, generator: EventGenerator, topic: str, rate: float, seconds: float
) -> int:
    """Produce at `rate` events/s, each stamped with the time it is handed over."""
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate)
        if due > sent:
            for event in generator.batch(due - sent, utc_now_ms()):
                key = str(event["customer_id"]).encode()
                while True:
                    try:
                        producer.produce(topic, key=key, value=orjson.dumps(event))
                        break
                    except BufferError:
                        producer.poll(0.01)
            sent = due
        producer.poll(0)
        time.sleep(0.002)
    producer.flush(30)
    return sent
