"""The benchmark run: one embedded stack, one backlog, every contender in turn.

The stack runs the broker `--broker` picks (Apache Kafka or Tansu, see
`streamer.devstack`); Apache Kafka's dev broker creates no topic on first use, so every
topic a contender reads or writes is created before it starts: the catalogue topics of
each prefix here, the Faust apps' changelog and leader topics by Faust at worker start.

Order: raw aiokafka ceiling, Faust floor, pipeline on one worker, pipeline on several
workers, textbook baseline, then the pipeline fed live at half and at a quarter of the
one-worker rate. Runs are sequential so no contender shares the CPU with another.

Throughput is the steady state (middle 80% of completions, see `measure.steady_window`),
taken from `scored_at` of the prediction records for the pipeline and the textbook, from
batch arrival times for the floor and from poll returns for the raw client.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from confluent_kafka import Producer
from threadpoolctl import threadpool_limits

from benchmarks.measure import (
    Mark,
    PredictionReader,
    ProcessSampler,
    Window,
    percentiles,
    read_marks_file,
    steady_window,
)
from models.registry import ModelRegistry
from models.synthetic import EventGenerator, generate_customers
from models.train import TrainingSource, train_and_register
from streamer.devstack import BrokerChoice, EmbeddedStack, free_port
from streamer.devstack.processes import ChildExited, ChildNotReady
from streamer.devstack.worker import WorkerProcess, start_worker
from streamer.store.profiles import load_profiles
from topics.admin import ensure_topics
from topics.catalogue import CUSTOMER_EVENTS, PREDICTIONS
from topics.events import utc_now_ms
from topics.producer import keyed_producer

READY_TIMEOUT_S = 120.0
LIVE_WARMUP_EVENTS = 200
MODEL_TRAINING_CUSTOMERS = 5000


# BenchConfig fields that, when set, override a worker setting in every contender.
WORKER_SETTINGS = {
    "batch_size": "STREAMER_BATCH_SIZE",
    "batch_within": "STREAMER_BATCH_WITHIN",
    "fetch_max_wait": "STREAMER_FETCH_MAX_WAIT",
}


class BenchError(RuntimeError):
    """The benchmark could not complete; the message says which step and where the logs are."""


@dataclass(frozen=True)
class BenchConfig:
    customers: int
    events: int
    workers: int
    partitions: int
    live_seconds: float
    textbook_seconds: float
    batch_size: int | None
    batch_within: float | None
    fetch_max_wait: float | None
    workdir: Path
    broker: BrokerChoice = "auto"


@dataclass
class Figures:
    """One contender's measured figures (JSON-ready)."""

    events: int
    events_per_s: float
    window_events: int = 0
    window_s: float = 0.0
    latency_ms: dict[str, float] | None = None
    peak_rss_mb: float | None = None
    cpu_s_per_1k: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "window_events": self.window_events,
            "window_s": round(self.window_s, 3),
        }
        if self.latency_ms is not None:
            data["latency_ms"] = {k: round(v, 1) for k, v in self.latency_ms.items()}
        if self.peak_rss_mb is not None:
            data["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        if self.cpu_s_per_1k is not None:
            data["cpu_s_per_1k"] = round(self.cpu_s_per_1k, 4)
        data.update(self.extra)
        return data


def check_alive(worker: WorkerProcess) -> None:
    """Fail the run, naming the log, if a contender's worker has exited."""
    if worker.returncode is not None:
        raise BenchError(
            f"{worker.name} exited with code {worker.returncode} (log {worker.log}): "
            + " | ".join(worker.log_tail(5).splitlines())
        )


class Bench:
    """Holds the stack, the data and the workdir for one benchmark run."""

    def __init__(self, config: BenchConfig, say: Callable[[str], None]) -> None:
        self.config = config
        self._say = say
        self._started = time.monotonic()
        self.stack = EmbeddedStack(
            workdir=config.workdir / "stack",
            broker=config.broker,
            # Apache Kafka's default, which the dev broker sets to 0: a new group waits 3 s
            # for more members before its first assignment, so the workers of the
            # multi-worker run start in one generation. With 0 the first worker took every
            # partition and scored part of the backlog until the second one's join
            # revoked them, and their uncommitted events were scored again (3,865 repeats
            # of 10,000 events). Only Apache Kafka reads it; on Tansu the held join (see
            # `env`) gathers both workers into one generation the same way.
            kafka_config={"group.initial.rebalance.delay.ms": "3000"},
        )
        self.registry = config.workdir / "registry"
        self.children: list[WorkerProcess] = []
        self.backlog: list[tuple[bytes, bytes]] = []
        self._customers: list[dict[str, str | int | float]] = []

    def say(self, message: str) -> None:
        self._say(f"[bench {time.monotonic() - self._started:6.1f}s] {message}")

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.config
        self.stack.start()
        self.say(f"broker: {self.stack.broker_name} ({self.stack.broker_reason})")
        self.say(f"broker {self.stack.kafka_broker}, redis {self.stack.redis_url}")
        # One OpenMP thread: on a busy machine, spinning threads make training crawl.
        with threadpool_limits(limits=1):
            train_and_register(
                ModelRegistry(self.registry),
                TrainingSource(n_customers=min(MODEL_TRAINING_CUSTOMERS, max(1000, cfg.customers))),
                author="bench",
            )
        self.say("model trained and registered")
        self._customers = generate_customers(cfg.customers, seed=7)
        generator = EventGenerator(self._customers, seed=1)
        now = utc_now_ms()
        self.backlog = [
            (str(event["customer_id"]).encode(), orjson.dumps(event))
            for event in generator.batch(cfg.events, now)
        ]
        self.say(f"generated {cfg.customers:,} customers and {cfg.events:,} events")
        # Redis databases: 1 = pipeline (1 worker), 2 = pipeline (N workers),
        # 3 = textbook, 4 = pipeline live at half, 5 = pipeline live at a quarter.
        for db in (1, 2, 3, 4, 5):
            redis_url = f"redis://127.0.0.1:{self.stack.redis_port}/{db}"
            load_profiles(redis_url, self._customers, chunk=5000)
        self.say(f"loaded {cfg.customers:,} profiles into each of 5 Redis databases")
        for prefix in ("bench1-", "bench2-"):
            self.create_topics(prefix)
            self.produce(f"{prefix}{CUSTOMER_EVENTS.name}", self.backlog)
        self.create_topics("bench-textbook-")
        self.create_topics("bench-live-")
        self.create_topics("bench-live-quarter-")
        self.say(f"produced the backlog of {cfg.events:,} events to bench1-/bench2- topics")

    def create_topics(self, prefix: str) -> None:
        ensure_topics(self.stack.kafka_broker, prefix, self.config.partitions)

    def produce(self, topic: str, messages: list[tuple[bytes, bytes]], linger_ms: int = 20) -> None:
        producer = keyed_producer(
            self.stack.bootstrap_servers,
            {"linger.ms": linger_ms, "queue.buffering.max.messages": 1_000_000},
        )
        for key, value in messages:
            while True:
                try:
                    producer.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(60) != 0:
            raise BenchError(f"could not deliver every event to {topic}")

    # -- workers -------------------------------------------------------------------------

    def env(self, prefix: str, redis_db: int, **extra: str) -> dict[str, str]:
        cfg = self.config
        env = {
            **os.environ,
            "KAFKA_BROKER": self.stack.kafka_broker,
            "REDIS_URL": f"redis://127.0.0.1:{self.stack.redis_port}/{redis_db}",
            "MODEL_REGISTRY": str(self.registry),
            "TOPIC_PREFIX": prefix,
            "STREAMER_PARTITIONS": str(cfg.partitions),
            "STREAMER_MODEL_POLL": "2",
            "PYTHONUNBUFFERED": "1",
        }
        if self.stack.broker_kind == "tansu":
            # Tansu holds a new group's first JoinGroup for half the session timeout (2 s
            # at 4 s, 5 s at the worker's default 10 s; the rebalance timeout made no
            # difference), where Apache Kafka answers at once (group.initial.rebalance.
            # delay.ms is 0 on the dev broker): short timeouts keep each contender's
            # start-up short. Tansu only: Apache Kafka refuses a session timeout under
            # group.min.session.timeout.ms (6 s) with INVALID_SESSION_TIMEOUT, and the
            # worker then never joins, so there the worker's defaults apply.
            env["STREAMER_SESSION_TIMEOUT"] = "4"
            env["STREAMER_REBALANCE_TIMEOUT"] = "3"
        for name, variable in WORKER_SETTINGS.items():
            value = getattr(cfg, name)
            if value is not None:
                env[variable] = str(value)
        env.update(extra)
        return env

    def start_worker(self, name: str, app_module: str, env: dict[str, str]) -> WorkerProcess:
        data_dir = self.config.workdir / "data" / name
        data_dir.mkdir(parents=True, exist_ok=True)
        worker = start_worker(
            {**env, "PYTHONPATH": _import_root()},
            free_port(),
            self.config.workdir / f"{name}.log",
            data_dir=data_dir,
            app=app_module,
            cwd=self.config.workdir,
            name=name,
        )
        self.children.append(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess) -> None:
        try:
            worker.wait_ready(READY_TIMEOUT_S)
        except ChildExited:
            check_alive(worker)  # it has exited: raises with its exit code and log
        except ChildNotReady:
            raise BenchError(
                f"{worker.name} not ready after {READY_TIMEOUT_S:.0f}s (log {worker.log})"
            ) from None

    def stop_all(self) -> None:
        # Figures are taken before this: a graceful stop only has to release the group.
        for child in self.children:
            child.stop(5.0)
        self.children.clear()

    def close(self) -> None:
        self.stop_all()
        self.stack.stop()

    def _wait_for(
        self,
        done: Callable[[], int],
        expected: int,
        children: list[WorkerProcess],
        cap_s: float | None = None,
        what: str = "events",
    ) -> None:
        """Until `expected` completions, or `cap_s` seconds after the first one."""
        first: float | None = None
        last_report = time.monotonic()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            count = done()
            now = time.monotonic()
            if count >= expected:
                return
            if count and first is None:
                first = now
                # Generous: the slowest contender (textbook) may run for its cap.
                deadline = now + (cap_s or max(120.0, expected / 200))
            if first is not None and cap_s is not None and now - first >= cap_s:
                return
            if now > deadline:
                raise BenchError(f"only {count:,} of {expected:,} {what} completed in time")
            for child in children:
                check_alive(child)
            if now - last_report >= 5:
                self.say(f"  {count:,} / {expected:,} {what}")
                last_report = now
            time.sleep(0.1)

    # -- contenders ----------------------------------------------------------------------

    def run_ceiling(self) -> Figures:
        marks, started = asyncio.run(self._read_raw(f"bench1-{CUSTOMER_EVENTS.name}"))
        window = steady_window(marks, started)
        return Figures(sum(n for _, n in marks), window.rate, window.events, _span(window))

    async def _read_raw(self, topic: str) -> tuple[list[Mark], float]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.stack.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(self.config.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            marks: list[Mark] = []
            count = 0
            started = time.time()
            deadline = time.monotonic() + READY_TIMEOUT_S
            while count < self.config.events and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
                n = 0
                for records in batches.values():
                    for record in records:
                        orjson.loads(record.value or b"null")
                        n += 1
                if n:
                    count += n
                    marks.append((time.time(), n))
            return marks, started
        finally:
            await consumer.stop()

    def run_floor(self) -> Figures:
        marks_file = self.config.workdir / "floor-marks.txt"
        env = self.env(
            "bench-floor-",
            0,
            BENCH_INPUT_TOPIC=f"bench1-{CUSTOMER_EVENTS.name}",
            BENCH_APP_ID="bench-floor",
            BENCH_MARKS=str(marks_file),
        )
        child = self.start_worker("floor", "benchmarks.floor", env)
        sampler = ProcessSampler([child.pid])
        sampler.start()
        try:
            self._wait_for(
                lambda: sum(n for _, n in read_marks_file(marks_file)),
                self.config.events,
                [child],
            )
            peak = sampler.peak_rss(child.pid)
        finally:
            sampler.stop()
            self.stop_all()
        marks = read_marks_file(marks_file)
        window = steady_window(marks)
        return Figures(
            sum(n for _, n in marks),
            window.rate,
            window.events,
            _span(window),
            peak_rss_mb=peak / 2**20,
            cpu_s_per_1k=_cpu_per_1k(sampler, window),
        )

    def run_pipeline(self, prefix: str, redis_db: int, workers: int) -> Figures:
        reader = PredictionReader(
            self.stack.bootstrap_servers, f"{prefix}{PREDICTIONS.name}", self.config.partitions
        )
        reader.start()
        env = self.env(prefix, redis_db)
        children = [
            self.start_worker(f"{prefix}worker{i + 1}", "streamer.app", env) for i in range(workers)
        ]
        sampler = ProcessSampler([c.pid for c in children])
        sampler.start()
        try:
            self._wait_for(lambda: reader.count, self.config.events, children, what="scored")
            peaks = [sampler.peak_rss(c.pid) for c in children]
        finally:
            sampler.stop()
            self.stop_all()
            reader.stop()
        return _backlog_figures(
            reader,
            sampler,
            max(peaks),
            {"workers": workers, "latency_note": "backlog: includes time queued"},
        )

    def run_textbook(self) -> Figures:
        prefix = "bench-textbook-"
        reader = PredictionReader(
            self.stack.bootstrap_servers, f"{prefix}{PREDICTIONS.name}", self.config.partitions
        )
        reader.start()
        env = self.env(prefix, 3, BENCH_INPUT_TOPIC=f"bench1-{CUSTOMER_EVENTS.name}")
        child = self.start_worker("textbook", "benchmarks.textbook", env)
        sampler = ProcessSampler([child.pid])
        sampler.start()
        try:
            self._wait_for(
                lambda: reader.count,
                self.config.events,
                [child],
                cap_s=self.config.textbook_seconds,
                what="scored",
            )
            peak = sampler.peak_rss(child.pid)
        finally:
            sampler.stop()
            self.stop_all()
            reader.stop()
        return _backlog_figures(
            reader, sampler, peak, {"capped_at_s": self.config.textbook_seconds}
        )

    def run_live(
        self, rate: float, prefix: str = "bench-live-", redis_db: int = 4, seed: int = 2
    ) -> Figures:
        """The pipeline fed by a paced producer; latency of events stamped as sent.

        Each live run needs its own Redis database and event ids: events already counted
        by an earlier run would be dropped as duplicates and never scored.
        """
        topic = f"{prefix}{CUSTOMER_EVENTS.name}"
        reader = PredictionReader(
            self.stack.bootstrap_servers, f"{prefix}{PREDICTIONS.name}", self.config.partitions
        )
        reader.start()
        child = self.start_worker(f"{prefix}worker", "streamer.app", self.env(prefix, redis_db))
        generator = EventGenerator(self._customers, seed=seed)
        # A low linger: the producer's wait counts in the latency.
        producer = keyed_producer(self.stack.bootstrap_servers, {"linger.ms": 1})
        sampler = ProcessSampler([child.pid])
        try:
            self.wait_ready(child)
            # Warm-up: proves partitions are assigned and the model is loaded.
            for event in generator.batch(LIVE_WARMUP_EVENTS, utc_now_ms()):
                producer.produce(
                    topic, key=str(event["customer_id"]).encode(), value=orjson.dumps(event)
                )
            producer.flush(30)
            self._wait_for(lambda: reader.count, LIVE_WARMUP_EVENTS, [child], what="warm-up")
            sampler.start()
            self.say(f"  pacing {rate:,.0f} events/s for {self.config.live_seconds:.0f}s")
            since_ms = utc_now_ms()
            sent = self._pace(producer, generator, topic, rate, self.config.live_seconds)
            self._wait_for(lambda: reader.count, LIVE_WARMUP_EVENTS + sent, [child], what="scored")
            peak = sampler.peak_rss(child.pid)
        finally:
            if sampler.is_alive():
                sampler.stop()
            self.stop_all()
            reader.stop()
        latencies = reader.latencies_ms(since_ms)
        paced = [(t, n) for t, n in reader.marks() if t * 1000 >= since_ms]
        window = steady_window(paced)
        return Figures(
            len(latencies),
            window.rate,
            window.events,
            _span(window),
            latency_ms=percentiles(latencies),
            peak_rss_mb=peak / 2**20,
            cpu_s_per_1k=_cpu_per_1k(sampler, window),
            extra={"target_rate": round(rate, 1), "sent": sent, "duplicates": reader.duplicates},
        )

    @staticmethod
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


def _backlog_figures(
    reader: PredictionReader, sampler: ProcessSampler, peak_rss: int, extra: dict[str, Any]
) -> Figures:
    """Figures of a run that scored the pre-produced backlog, from its prediction records."""
    window = steady_window(reader.marks())
    return Figures(
        reader.count,
        window.rate,
        window.events,
        _span(window),
        latency_ms=percentiles(reader.latencies_ms()),
        peak_rss_mb=peak_rss / 2**20,
        cpu_s_per_1k=_cpu_per_1k(sampler, window),
        extra={**extra, "duplicates": reader.duplicates},
    )


def _span(window: Window) -> float:
    return window.end - window.start


def _cpu_per_1k(sampler: ProcessSampler, window: Window) -> float | None:
    if window.events == 0:
        return None
    return sampler.cpu_between(window.start, window.end) / window.events * 1000


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _import_root() -> str:
    """PYTHONPATH for contender workers: the folder holding `benchmarks` (not shipped in the
    wheel, so importable only from the source tree) before anything already set."""
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
