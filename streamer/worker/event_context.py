"""Run table updates on behalf of an event taken from a micro-batch.

Faust tables find the changelog partition (and window time) from the *current event*,
which `stream.take_events()` does not set while the batch is processed (faust-streaming
issue #497). Setting it for the duration of an update keeps the changelog on the right
partition, exactly as per-event iteration would.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def acting_as(event: EventT) -> Iterator[None]:
    """Make `event` Faust's current event inside the block."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
