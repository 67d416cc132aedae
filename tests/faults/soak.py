"""A soak: live traffic through two workers while faults strike at random, then the audit.

    python -m tests.faults.soak [--minutes 20] [--rate EVENTS_PER_S] [--seed N]
    make soak MINUTES=20

Starts Apache Kafka (or Tansu) and a Redis with an append-only file, trains a small model,
measures the one-worker rate on a backlog (unless `--rate`), then publishes at half that
rate through two workers for `--minutes`. Meanwhile, at random intervals, one fault at a
time: SIGKILL of a worker, SIGTERM of a worker (each restarted at once, as an orchestrator
would), a Redis restart, a Redis pause (SIGSTOP, then SIGCONT). Worker `a` takes the
kills and stops half the time, so both take over partitions; worker `b` is never stopped,
so its memory shows any growth over the whole run. Then the traffic stops, the pipeline
drains, and everything is audited from the real outputs: profile counters in Redis (lost,
double counted), the page-view tables over HTTP (exact), the worker logs (stalls the
watchdog reported) and the lag sampled all along.

Prints one line per fault and a final line:
`soak: minutes=… sent=… lost=0 double_counted=0 tables_exact=yes stalls=0 max_lag=… rss_growth_mb=…`
and exits 1 if anything was lost, doubled, inexact or stalled. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis
from confluent_kafka import Producer

from models.registry import ModelRegistry
from models.train import TrainingSource, train_and_register
from streamer.devstack import EmbeddedStack
from tests.support.faults import (
    Scenario,
    encode,
    follow,
    make_events,
    page_views,
)
from tests.support.services import Worker

# A log line the progress watchdog writes when an agent stalls (streamer.worker.watchdog).
STALL_MARK = "STALLED"
# Counting standing still this long with events waiting, outside a Redis fault, is a stall.
STALL_S = 90.0
WARM_UP_SHARE = 0.1  # memory growth is measured from this share of the run on


class Paced(threading.Thread):
    """Publishes `events` at `rate` per second, in ten chunks a second, until told to stop."""

    def __init__(self, bootstrap: str, topic: str, events: list[dict[str, object]], rate: float):
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic, self.events, self.rate = topic, events, rate
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopping.is_set() and self.sent < len(self.events):
            due = min(len(self.events), int((time.monotonic() - started) * self.rate))
            for event in self.events[self.sent : due]:
                key, value = encode(event)
                self.producer.produce(self.topic, value, key)
            self.producer.poll(0)
            self.sent = max(self.sent, due)
            time.sleep(0.1)
        self.producer.flush(60)

    def stop(self) -> list[dict[str, object]]:
        """Stop publishing; the events sent."""
        self.stopping.set()
        self.join()
        return self.events[: self.sent]


@dataclass
class Soak:
    """The running soak: its scenario, workers, traffic and what it has seen."""

    stack: EmbeddedStack
    scenario: Scenario
    workers: dict[str, Worker]
    traffic: Paced
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    redis_faulted_until: float = 0.0
    max_lag: int = 0
    stalls: int = 0
    lines: list[str] = field(default_factory=list)

    def clock(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"{elapsed // 60}m{elapsed % 60:02d}s"

    def restart(self, name: str) -> float:
        """Start worker `name` again; seconds until it is ready."""
        begun = time.monotonic()
        self.workers[name].start()
        return time.monotonic() - begun


def sigkill_worker(soak: Soak) -> str:
    victim = soak.workers["a"]
    assert victim.process is not None
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(30)
    return f"SIGKILL worker a; ready again in {soak.restart('a'):.1f}s"


def sigterm_worker(soak: Soak) -> str:
    victim = soak.workers["a"]
    assert victim.process is not None
    begun = time.monotonic()
    victim.process.send_signal(signal.SIGTERM)
    code = victim.process.wait(120)
    took = time.monotonic() - begun
    return f"SIGTERM worker a; exit {code} in {took:.1f}s; ready again in {soak.restart('a'):.1f}s"


def restart_redis(soak: Soak) -> str:
    begun = time.monotonic()
    soak.stack.stop_process("redis")
    soak.stack.start_redis()
    took = time.monotonic() - begun
    soak.redis_faulted_until = time.monotonic() + took + STALL_S
    return f"Redis restarted (down {took:.1f}s)"


def pause_redis(soak: Soak) -> str:
    pause_s = soak.rng.uniform(5, 20)
    server = soak.stack.processes["redis"]
    server.send_signal(signal.SIGSTOP)
    try:
        time.sleep(pause_s)
    finally:
        server.send_signal(signal.SIGCONT)
    soak.redis_faulted_until = time.monotonic() + STALL_S
    return f"Redis paused {pause_s:.1f}s (SIGSTOP, SIGCONT)"


FAULTS: tuple[Callable[[Soak], str], ...] = (
    sigkill_worker,
    sigterm_worker,
    restart_redis,
    pause_redis,
)


def watch(soak: Soak, seconds: float, rss: list[float]) -> None:
    """Sample lag, stalls and worker b's memory for `seconds`."""
    until = time.monotonic() + seconds
    measure = soak.scenario.measure
    last_counted, moved_at = -1, time.monotonic()
    while time.monotonic() < until:
        try:
            counted = measure.counted()
        except redis.exceptions.RedisError:  # restarting or paused: sample again later
            time.sleep(1.0)
            continue
        lag = soak.traffic.sent - counted
        soak.max_lag = max(soak.max_lag, lag)
        now = time.monotonic()
        if counted != last_counted or lag <= 0 or now < soak.redis_faulted_until:
            last_counted, moved_at = counted, now
        elif now - moved_at > STALL_S:
            soak.stalls += 1
            soak.lines.append(f"soak stall at {soak.clock()}: counted={counted} lag={lag}")
            print(soak.lines[-1], flush=True)
            moved_at = now
        keeper = soak.workers["b"].process
        if keeper is not None and keeper.poll() is None:
            rss.append(psutil.Process(keeper.pid).memory_info().rss / 2**20)
        time.sleep(2.0)


def one_worker_rate(stack: EmbeddedStack, registry: Path, folder: Path) -> float:
    """Events per second one worker applies from a backlog, from the first event counted
    on (its start-up left out: the soak's traffic arrives at running workers)."""
    folder.mkdir()
    with Scenario(stack, "calibrate-", 14, registry, folder) as scenario:
        events = make_events(6000, run="cal", customers=500, seed=3)
        worker = scenario.worker(scenario.env(), "calibrate")
        worker.start()
        scenario.publish([encode(e) for e in events])
        measure = scenario.measure
        follow(measure.counted, 1, 60.0)
        begun, first = time.monotonic(), measure.counted()
        done, counted = follow(measure.counted, len(events), 60.0)
        assert done, f"calibration stalled at {counted}/{len(events)}"
        return (counted - first) / (time.monotonic() - begun)


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    registry = root / "registry"
    train_and_register(
        ModelRegistry(registry), TrainingSource(n_customers=3000, seed=11), author="soak"
    )
    rng = random.Random(args.seed)
    with EmbeddedStack(workdir=root / "stack", broker=args.broker, redis_persistent=True) as stack:
        rate = args.rate or one_worker_rate(stack, registry, root / "calibrate") / 2
        print(f"soak: broker {stack.broker_name}, {rate:.0f} events/s, logs under {root}")
        seconds = args.minutes * 60
        events = make_events(int(rate * seconds) + 1, run="soak", customers=2000, seed=args.seed)
        with Scenario(stack, "soak-", 15, registry, root / "soak") as scenario:
            (root / "soak").mkdir()
            env = scenario.env()
            workers = {
                "a": scenario.worker({**env, "STREAMER_DATA_DIR": str(root / "a")}, "a"),
                "b": scenario.worker({**env, "STREAMER_DATA_DIR": str(root / "b")}, "b"),
            }
            for worker in workers.values():
                worker.start()
            traffic = Paced(stack.bootstrap_servers, scenario.source, events, rate)
            soak = Soak(stack, scenario, workers, traffic, rng)
            traffic.start()
            rss: list[float] = []
            while time.monotonic() - soak.started < seconds:
                left = seconds - (time.monotonic() - soak.started)
                watch(soak, min(left, rng.uniform(30, 90)), rss)
                if time.monotonic() - soak.started >= seconds:
                    break
                fault = rng.choice(FAULTS)
                soak.lines.append(f"soak fault at {soak.clock()}: {fault(soak)}")
                print(soak.lines[-1], flush=True)
            sent = traffic.stop()
            return audit(soak, sent, args.minutes, rss)


def audit(soak: Soak, sent: list[dict[str, object]], minutes: float, rss: list[float]) -> int:
    """Drain, then the final line; 1 if anything is wrong."""
    measure = soak.scenario.measure
    done, _ = measure.wait_progress(sent, idle_s=STALL_S)
    if not done:
        soak.stalls += 1
    _, lost, double = measure.lost_and_double(sent)
    keeper = soak.workers["b"].base_url
    _, tables = follow(lambda: measure.table_total(keeper), page_views(sent), 30.0)
    tables_exact = tables == page_views(sent)
    for name, worker in soak.workers.items():
        log = worker.log_path.read_text(errors="replace")
        reported = log.count(STALL_MARK)
        if reported:
            soak.stalls += reported
            print(f"soak: worker {name} reported {reported} stall(s) in {worker.log_path}")
    warm = rss[int(len(rss) * WARM_UP_SHARE)] if rss else 0.0
    growth = (rss[-1] - warm) if rss else 0.0
    print(
        f"soak: minutes={minutes:g} sent={len(sent)} lost={lost} double_counted={double} "
        f"tables_exact={'yes' if tables_exact else f'no ({tables}/{page_views(sent)})'} "
        f"stalls={soak.stalls} max_lag={soak.max_lag} rss_growth_mb={growth:.1f}",
        flush=True,
    )
    return 0 if (lost, double, soak.stalls) == (0, 0, 0) and tables_exact else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s (default: measured)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--broker", choices=["auto", "kafka", "tansu"], default="auto")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be above 0")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
