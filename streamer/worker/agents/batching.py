"""Micro-batches of events, the unit every agent works in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import cast

from faust import Stream
from faust.types import EventT, StreamT

from streamer.worker.app import settings


def micro_batches(stream: StreamT[bytes]) -> AsyncIterator[Sequence[EventT]]:
    """Up to STREAMER_BATCH_SIZE events, or fewer after STREAMER_BATCH_WITHIN seconds.

    Events (not bare values) keep the partition and offset the dead-letter records and the
    table changelogs need; they are acknowledged after the batch is processed.
    """
    return cast(Stream[bytes], stream).take_events(
        settings.worker.batch_size, within=settings.worker.batch_within
    )
