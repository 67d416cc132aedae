"""Each stage's work on one micro-batch, given everything it uses: the profile store, where
its records and dead letters go, the serving models, the tables.

The agents in `streamer.worker.agents` wire in the worker's own (Redis with retries,
Faust's producer and transactions, the Faust tables); unit tests pass small fakes. The
events only need a value and their message's key, topic, partition and offset
(`Received`), which a Faust event has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from topics.events import Stage


class SourceMessage(Protocol):
    """Where an event was read from, and its key."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...


class Received(Protocol):
    """What the stages read of an event taken from a stream."""

    @property
    def value(self) -> Any: ...

    @property
    def message(self) -> SourceMessage: ...


E = TypeVar("E", bound=Received)

# A record to publish on behalf of an event: (the event, key, value). With exactly_once it
# goes into the transaction of the event's partition.
Output = tuple[E, bytes | None, bytes]
# Publishes a batch's records, in order.
Publish = Callable[[Sequence[Output[E]]], Awaitable[None]]
# Dead-letters one event: (event, reason, error type, stage).
DeadLetterSink = Callable[[E, str, str, Stage], Awaitable[None]]


def position(event: Received) -> str:
    """`topic/partition/offset` of the message an event was read from."""
    message = event.message
    return f"{message.topic}/{message.partition}/{message.offset}"
