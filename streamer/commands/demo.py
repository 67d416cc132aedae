"""`streamer demo`: the whole pipeline on the embedded stack, with generated traffic."""

from __future__ import annotations

import signal
import sys
import threading
import urllib.request
from pathlib import Path
from types import FrameType

import click
import orjson

from models.registry import ModelRegistry
from models.synthetic import generate_customers
from models.train import TrainingSource, train_and_register
from streamer.commands.common import (
    broker_option,
    customers_option,
    duration_option,
    load_settings,
    rate_option,
)
from streamer.commands.dev import start_stack, write_stack_env
from streamer.devstack import BrokerChoice, EmbeddedStack, free_port
from streamer.devstack.processes import ChildExited, ChildNotReady
from streamer.devstack.traffic import default_generator, run_traffic
from streamer.devstack.worker import WorkerProcess, start_worker
from streamer.settings import STACK_ENV_FILE
from streamer.store.profiles import load_profiles
from topics.admin import ensure_topics
from topics.producer import EventProducer

READY_TIMEOUT_S = 120.0
DEMO_DIR = Path(".streamer")


def fetch_summary(base_url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"{base_url}/api/summary", timeout=2) as response:
            summary: dict[str, object] = orjson.loads(response.read())
            return summary
    except OSError:
        return {}


@click.command()
@broker_option
@customers_option(2000)
@rate_option(300.0)
@duration_option
@click.option(
    "--web-port",
    type=click.IntRange(0, 65535),
    default=6066,
    help="the worker's web port (0 picks a free one)",
)
def demo(
    broker: BrokerChoice, customers: int, rate: float, duration: float | None, web_port: int
) -> None:
    """Start broker, Redis, a model, profiles, a worker and traffic; print where to look.

    Ctrl-C reaches this process alone (the children run in their own sessions); it then
    stops the traffic, the worker, and last the broker and Redis they need.
    """
    registry_root = load_settings().models.registry
    # SIGTERM stops the demo as Ctrl-C does: through the cleanup below.
    signal.signal(signal.SIGTERM, _interrupt)
    stack = EmbeddedStack(workdir=DEMO_DIR / "stack", broker=broker)
    start_stack(stack)
    worker: WorkerProcess | None = None
    producer: EventProducer | None = None
    stopping = threading.Event()
    try:
        write_stack_env(stack)
        click.echo(f"KAFKA_BROKER={stack.kafka_broker}")
        click.echo(f"REDIS_URL={stack.redis_url}")
        ensure_topics(stack.kafka_broker, "", 4)

        registry = ModelRegistry(registry_root)
        if registry.serving_version() is None:
            click.echo("no model yet: training one on synthetic customers ...")
            metadata = train_and_register(registry, TrainingSource())
            click.echo(
                f"registered model {metadata.version} "
                f"(holdout ROC AUC {metadata.metrics.roc_auc:.3f})"
            )
        click.echo(f"serving model {registry.serving_version()} from {registry_root}")

        people = generate_customers(customers, seed=7)
        loaded = load_profiles(stack.redis_url, people)
        click.echo(f"loaded {loaded:,} customer profiles")

        log = DEMO_DIR / "worker.log"
        log.write_bytes(b"")  # this run's output only
        worker = start_worker(
            {
                "KAFKA_BROKER": stack.kafka_broker,
                "REDIS_URL": stack.redis_url,
                "MODEL_REGISTRY": str(registry_root),
            },
            web_port or free_port(),
            log,
        )
        base = worker.base_url
        click.echo(f"starting a worker (log: {log}) ...")
        try:
            worker.wait_ready(READY_TIMEOUT_S, interval=0.5)
        except ChildExited:
            raise click.ClickException(
                "worker exited during start:\n" + worker.log_tail(15)
            ) from None
        except ChildNotReady:
            raise click.ClickException(
                f"worker not ready after {READY_TIMEOUT_S:.0f}s; see {log}"
            ) from None
        click.echo("")
        click.echo(f"  dashboard   {base}/dashboard")
        click.echo(f"  page views  {base}/api/page-views")
        click.echo(f"  a profile   {base}/api/profiles/c-1")
        click.echo(f"  metrics     {base}/metrics")
        click.echo("")
        click.echo(f"sending ~{rate:,.0f} events/s for {customers:,} customers; Ctrl-C stops")

        def progress(sent: int, seconds: float) -> None:
            summary = fetch_summary(base)
            counters = summary.get("counters", {})
            assert isinstance(counters, dict)
            click.echo(
                f"\r  sent {sent:>9,}  scored {counters.get('predictions', 0):>9,}  "
                f"dead letters {counters.get('dead_letters', 0):>5,}  "
                f"model {summary.get('model_version')}  ({sent / seconds:,.0f} events/s)",
                nl=not sys.stdout.isatty(),
            )

        producer = EventProducer(stack.kafka_broker)

        def stop_traffic(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        # From here on Ctrl-C ends the traffic loop, which then reports what it sent.
        signal.signal(signal.SIGINT, stop_traffic)
        signal.signal(signal.SIGTERM, stop_traffic)
        report = run_traffic(
            producer,
            default_generator(customers, seed=None),
            rate=rate,
            duration_s=duration,
            should_stop=stopping.is_set,
            on_progress=progress,
        )
        click.echo(f"\nsent {report.sent:,} events at {report.rate:,.0f}/s")
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave the broker running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        click.echo("stopping: traffic, worker, broker and Redis ...", err=True)
        if producer is not None:
            # Released before the broker stops, or its client logs reconnect failures.
            producer.flush(5)
            producer = None
        if worker is not None:
            worker.stop(30)
        stack.stop()
        STACK_ENV_FILE.unlink(missing_ok=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
