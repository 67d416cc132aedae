"""The benchmark run: one embedded stack, its data, and the contenders' processes.

The stack runs the broker `--broker` picks (Apache Kafka or Tansu, see
`streamer.devstack`); Apache Kafka's dev broker creates no topic on first use, so every
topic a contender reads or writes is created before it starts: the catalogue topics of
each prefix here, the Faust apps' changelog and leader topics by Faust at worker start.
Backlogs are produced and profiles loaded on first use, so `--only` pays for what it runs.

`Bench.launch` starts a contender of any kind and says where its completions show;
`benchmarks.backlog` runs the backlog rows, `benchmarks.running` feeds contenders that
already run (bursts, live loads). Runs are sequential so no contender shares the CPU
with another.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from confluent_kafka import Producer
from threadpoolctl import threadpool_limits

from benchmarks.measure import Completions, MarksFile, PredictionReader
from models.registry import ModelRegistry
from models.synthetic import EventGenerator, generate_customers
from models.train import TrainingSource, train_and_register
from streamer.devstack import BrokerChoice, EmbeddedStack, free_port
from streamer.devstack.processes import http_ok, spawn
from streamer.devstack.worker import WorkerProcess, start_worker
from streamer.store.profiles import load_profiles
from topics.admin import ensure_topics
from topics.catalogue import CUSTOMER_EVENTS, PREDICTIONS
from topics.events import EventType, utc_now_ms
from topics.producer import keyed_producer

READY_TIMEOUT_S = 120.0
STALL_TIMEOUT_S = 120.0
MODEL_TRAINING_CUSTOMERS = 5000

# What a contender is: the real worker, the textbook baseline, the Quix Streams peer (a
# separate module, run when installed) or Faust's floor.
Kind = Literal["pipeline", "textbook", "quix", "floor"]

# BenchConfig fields that, when set, override a worker setting in every contender.
WORKER_SETTINGS = {
    "batch_size": "STREAMER_BATCH_SIZE",
    "batch_within": "STREAMER_BATCH_WITHIN",
    "fetch_max_wait": "STREAMER_FETCH_MAX_WAIT",
}


class BenchError(RuntimeError):
    """The benchmark could not complete; the message says which step and where the logs are."""


class NotMeasured(Exception):
    """A row this run does not measure; the message says why (it reads in the table)."""


@dataclass(frozen=True)
class BenchConfig:
    customers: int
    events: int
    burst_events: int
    burst_customers: int
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
class Launched:
    """A started contender: its processes, where its completions show, its profiles."""

    children: list[WorkerProcess]
    output: Completions
    input_topic: str
    redis_url: str | None  # None: it keeps no profiles (the floor)
    ready_route: bool  # the pipeline's /ready; the others are running once they complete

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]


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
        self.backlog_page_views = 0
        self.customers: list[dict[str, str | int | float]] = []
        self._produced: set[str] = set()
        self._loaded: set[int] = set()

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
        self.customers = generate_customers(cfg.customers, seed=7)
        events = EventGenerator(self.customers, seed=1).batch(cfg.events, utc_now_ms())
        self.backlog = [(str(e["customer_id"]).encode(), orjson.dumps(e)) for e in events]
        self.backlog_page_views = sum(1 for e in events if e["type"] == EventType.PAGE_VIEW)
        self.say(f"generated {cfg.customers:,} customers and {cfg.events:,} events")

    def create_topics(self, prefix: str) -> str:
        """The catalogue topics of `prefix`; returns its input topic."""
        ensure_topics(self.stack.kafka_broker, prefix, self.config.partitions)
        return CUSTOMER_EVENTS.full_name(prefix)

    def backlog_topic(self, prefix: str) -> str:
        """`prefix`'s input topic, holding the backlog (produced on first use)."""
        topic = self.create_topics(prefix)
        if topic not in self._produced:
            self.produce(topic, self.backlog)
            self._produced.add(topic)
            self.say(f"  produced the backlog of {self.config.events:,} events to {topic}")
        return topic

    def redis_url(self, db: int) -> str:
        """Redis database `db`, holding every customer's profile (loaded on first use).

        Each contender that counts has its own: events counted by an earlier run would be
        dropped there as duplicates and never scored.
        """
        url = f"redis://127.0.0.1:{self.stack.redis_port}/{db}"
        if db not in self._loaded:
            load_profiles(url, self.customers, chunk=5000)
            self._loaded.add(db)
            self.say(f"  loaded {len(self.customers):,} profiles into Redis database {db}")
        return url

    def produce(
        self,
        topic: str,
        messages: list[tuple[bytes, bytes]],
        producer: Producer | None = None,
    ) -> None:
        producer = producer or keyed_producer(
            self.stack.bootstrap_servers,
            {"linger.ms": 20, "queue.buffering.max.messages": 1_000_000},
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

    def env(self, prefix: str, redis_url: str, **extra: str) -> dict[str, str]:
        cfg = self.config
        env = {
            **os.environ,
            "KAFKA_BROKER": self.stack.kafka_broker,
            "REDIS_URL": redis_url,
            "MODEL_REGISTRY": str(self.registry),
            "TOPIC_PREFIX": prefix,
            "STREAMER_PARTITIONS": str(cfg.partitions),
            "STREAMER_MODEL_POLL": "2",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": _import_root(),
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

    def data_dir(self, name: str) -> Path:
        folder = self.config.workdir / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def start_worker(self, name: str, app_module: str, env: dict[str, str]) -> WorkerProcess:
        worker = start_worker(
            env,
            free_port(),
            self.config.workdir / f"{name}.log",
            data_dir=self.data_dir(name),
            app=app_module,
            cwd=self.config.workdir,
            name=name,
        )
        self.children.append(worker)
        return worker

    def start_module(self, name: str, module: str, env: dict[str, str]) -> WorkerProcess:
        """`python -m module`, a contender with no web port (port 0: nothing to probe)."""
        log = self.config.workdir / f"{name}.log"
        process = spawn([sys.executable, "-m", module], log, self.config.workdir, env)
        worker = WorkerProcess(process, 0, log, name)
        self.children.append(worker)
        return worker

    def launch(
        self,
        kind: Kind,
        prefix: str,
        redis_db: int = 0,
        workers: int = 1,
        input_topic: str | None = None,
    ) -> Launched:
        """Start a contender writing under `prefix` and reading `input_topic` (default:
        `prefix`'s own; the pipeline always reads its own). Its topics must exist."""
        topic = input_topic or CUSTOMER_EVENTS.full_name(prefix)
        name = prefix.rstrip("-")
        if kind == "floor":
            marks = MarksFile(self.config.workdir / f"{name}-marks.txt")
            marks.path.unlink(missing_ok=True)  # a kept workdir's earlier run
            env = self.env(
                prefix,
                self.stack.redis_url,  # unused: the floor keeps no profiles
                BENCH_INPUT_TOPIC=topic,
                BENCH_APP_ID=name,
                BENCH_MARKS=str(marks.path),
            )
            child = self.start_worker(name, "benchmarks.floor", env)
            return Launched([child], marks, topic, None, ready_route=False)
        redis_url = self.redis_url(redis_db)
        reader = PredictionReader(
            self.stack.bootstrap_servers, PREDICTIONS.full_name(prefix), self.config.partitions
        )
        reader.start()
        if kind == "pipeline":
            env = self.env(prefix, redis_url)
            children = [
                self.start_worker(f"{name}-worker{i + 1}", "streamer.app", env)
                for i in range(workers)
            ]
            return Launched(children, reader, CUSTOMER_EVENTS.full_name(prefix), redis_url, True)
        env = self.env(prefix, redis_url, BENCH_INPUT_TOPIC=topic)
        if kind == "textbook":
            child = self.start_worker(name, "benchmarks.textbook", env)
        else:
            env["BENCH_STATE_DIR"] = str(self.data_dir(name))
            child = self.start_module(name, "benchmarks.quix_peer", env)
        return Launched([child], reader, topic, redis_url, ready_route=False)

    def wait_ready(self, workers: list[WorkerProcess]) -> float:
        """Until every worker's `/ready` answers 200; the moment the first did (epoch s).

        All are polled together, so each moment is the first answer seen within 50 ms.
        """
        probes = {worker.name: http_ok(f"{worker.base_url}/ready") for worker in workers}
        ready_at: dict[str, float] = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready_at) < len(workers):
            for worker in workers:
                check_alive(worker)
                if worker.name not in ready_at and probes[worker.name]():
                    ready_at[worker.name] = time.time()
            if time.monotonic() > deadline:
                late = ", ".join(
                    f"{w.name} (log {w.log})" for w in workers if w.name not in ready_at
                )
                raise BenchError(f"not ready after {READY_TIMEOUT_S:.0f}s: {late}")
            time.sleep(0.05)
        return min(ready_at.values())

    def stop_all(self) -> None:
        # Figures are taken before this: a graceful stop only has to release the group.
        for child in self.children:
            child.stop(5.0)
        self.children.clear()

    def close(self) -> None:
        self.stop_all()
        self.stack.stop()

    def wait_for(
        self,
        done: Callable[[], int],
        expected: int,
        children: list[WorkerProcess],
        what: str = "events",
        cap_s: float | None = None,
    ) -> None:
        """Until `expected` completions or `cap_s` seconds after the first one, whichever
        comes first; fails if no completion comes for
        STALL_TIMEOUT_S (a slow contender on a busy machine is measured, a stuck one not)."""
        first: float | None = None
        last_report = time.monotonic()
        last_count, last_progress = 0, time.monotonic()
        while True:
            count = done()
            now = time.monotonic()
            if count >= expected:
                return
            if count and first is None:
                first = now
            if first is not None and cap_s is not None and now - first >= cap_s:
                return
            if count > last_count:
                last_count, last_progress = count, now
            elif now - last_progress > STALL_TIMEOUT_S:
                raise BenchError(
                    f"only {count:,} of {expected:,} {what} completed, none in the last "
                    f"{STALL_TIMEOUT_S:.0f}s"
                )
            for child in children:
                check_alive(child)
            if now - last_report >= 5:
                self.say(f"  {count:,} / {expected:,} {what}")
                last_report = now
            time.sleep(0.1)


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
