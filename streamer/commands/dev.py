"""`streamer dev`: run the embedded broker and Redis in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from streamer.commands.common import broker_option
from streamer.devstack import BrokerChoice, EmbeddedStack, StackError
from streamer.settings import STACK_ENV_FILE


def write_stack_env(stack: EmbeddedStack, path: Path = STACK_ENV_FILE) -> None:
    """Record the stack's addresses so commands in this folder find it without exports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"KAFKA_BROKER={stack.kafka_broker}\nREDIS_URL={stack.redis_url}\n")


class StopSignals:
    """SIGINT and SIGTERM, installed before anything starts: until `running` they abort the
    start (which stops whatever already runs); after, they end `wait()`."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.running = False
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested.is_set()
        self.requested.set()
        if first and not self.running:
            raise KeyboardInterrupt

    def wait(self) -> None:
        while not self.requested.wait(0.5):
            pass


def start_stack(stack: EmbeddedStack) -> None:
    """Start the stack, saying which broker runs and why; a one-line error if it cannot."""
    try:
        stack.start()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"broker: {stack.broker_name} ({stack.broker_reason})", err=True)


@click.command()
@broker_option
@click.option("--kafka-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port")
@click.option("--redis-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="keep the broker's log dir and Redis files here after stopping (default: a "
    "temporary folder, removed at stop)",
)
def dev(broker: BrokerChoice, kafka_port: int, redis_port: int, data_dir: Path | None) -> None:
    """Start a real broker and Redis on loopback until SIGINT/SIGTERM."""
    stack = EmbeddedStack(
        kafka_port=kafka_port,
        redis_port=redis_port,
        broker=broker,
        workdir=data_dir,
        keep_workdir=data_dir is not None,
    )
    signals = StopSignals()
    start_stack(stack)
    signals.running = True
    try:
        write_stack_env(stack)
        click.echo(f"KAFKA_BROKER={stack.kafka_broker}")
        click.echo(f"REDIS_URL={stack.redis_url}")
        signals.wait()
    finally:
        stack.stop()
        STACK_ENV_FILE.unlink(missing_ok=True)
