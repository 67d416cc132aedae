"""`streamer dev`: run the embedded broker and Redis in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from streamer.devstack import EmbeddedStack, StackError
from streamer.settings import STACK_ENV_FILE


def write_stack_env(stack: EmbeddedStack, path: Path = STACK_ENV_FILE) -> None:
    """Record the stack's addresses so commands in this folder find it without exports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"KAFKA_BROKER={stack.kafka_broker}\nREDIS_URL={stack.redis_url}\n")


def wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(0.5):
        pass


@click.command()
@click.option("--kafka-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port")
@click.option("--redis-port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port")
def dev(kafka_port: int, redis_port: int) -> None:
    """Start a real Kafka-protocol broker and Redis on loopback until SIGINT/SIGTERM."""
    stack = EmbeddedStack(kafka_port=kafka_port, redis_port=redis_port)
    try:
        stack.start()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        write_stack_env(stack)
        click.echo(f"KAFKA_BROKER={stack.kafka_broker}")
        click.echo(f"REDIS_URL={stack.redis_url}")
        wait_for_stop_signal()
    finally:
        stack.stop()
        STACK_ENV_FILE.unlink(missing_ok=True)
