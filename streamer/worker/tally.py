"""A page-view count that remembers which source messages it has counted.

A table entry's value is `{"count": n, "through": {"3": 1234}}`: the count, and per
partition of `customer-events` the highest offset counted into it. Both travel in the
entry's one changelog record, so a table rebuilt from its changelog never holds a count
without the offsets it covers, and an event read again after a crash (the same enriched
record redelivered, or the same source message enriched and published once more) is
skipped: its source offset is at or below the entry's.

Skipping at or below the highest offset is exact because a source partition's events reach
an entry in offset order, copies apart: each worker enriches a partition in order from its
committed offset, and publishes in that order (aiokafka keeps one request in flight per
partition), so a copy of an event can only follow the event's first copy.

A plain int is an entry written before this format (or a table's default for a missing
key): a count with no offsets, read and added to as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A stored value: {"count": int, "through": {partition as str: offset}} or a legacy int.
Tally = int | dict[str, Any]
# Where an enriched event's source message was read: (partition, offset); None on records
# of releases before enriched events carried it (counted, never skipped).
Source = tuple[int, int] | None


def count_of(value: Tally) -> int:
    """The count a stored value holds."""
    return value if isinstance(value, int) else int(value["count"])


def add(value: Tally, sources: Iterable[Source]) -> tuple[Tally, int, int]:
    """Count the events of `sources` (in stream order) that `value` does not cover yet:
    (the new value, events counted, events skipped). The value comes back unchanged (the
    same object) when every event was already counted."""
    if isinstance(value, int):
        count, through = value, {}
    else:
        count = int(value["count"])
        through = {int(partition): offset for partition, offset in value["through"].items()}
    counted = skipped = 0
    for source in sources:
        if source is not None:
            partition, offset = source
            if offset <= through.get(partition, -1):
                skipped += 1
                continue
            through[partition] = offset
        counted += 1
    if not counted:
        return value, 0, skipped
    stored = {str(partition): offset for partition, offset in through.items()}
    return {"count": count + counted, "through": stored}, counted, skipped
