"""Faust tables of page views.

Per-page counts are keyed `"{partition}:{page}"` (`streamer.worker.stages.counting.page_key`
says why); a page's count is the sum over partitions, which `streamer.worker.web` gathers
across workers. Values are `streamer.worker.tally` values: a count with the source offsets
it covers (a plain int in changelogs of releases before them, still read).
"""

from __future__ import annotations

from collections.abc import Hashable

import faust
from faust.types import EventT, TableT
from faust.types.tables import WindowWrapperT

from streamer.worker.app import app, settings
from streamer.worker.tally import Tally

# The app's default serializer is raw bytes (for topics); table keys and counts are JSON.
JSON_SCHEMA: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")


def _counts(name: str, description: str) -> TableT[str, Tally]:
    """A table of counts, partitioned like the topics so it stays co-partitioned; a missing
    key reads as 0."""
    return app.Table(
        name,
        default=int,
        partitions=settings.topics.partitions,
        schema=JSON_SCHEMA,
        help=description,
    )


page_views_total = _counts("page-views-total", "Page views per partition and page, all time")
page_window = faust.TumblingWindow(
    settings.worker.page_window, expires=settings.worker.page_window_expires
)
page_views_windowed = _counts(
    "page-views-windowed", "Page views per partition and page, in tumbling windows"
).using_window(page_window)
customer_page_views = _counts("customer-page-views", "Page views per customer")


class CurrentWindow:
    """A windowed table as a mapping of the current event's window: what Faust's
    `table[key] += n` reads and writes, for values that are not numbers."""

    def __init__(self, table: WindowWrapperT) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Tally:
        value: Tally = self.table[key].value()
        return value

    def __setitem__(self, key: str, value: Tally) -> None:
        self.table[key] = value


def window_of(event: EventT) -> Hashable:
    """The window of `page_views_windowed` an event counts in: by its message's timestamp,
    as Faust picks it."""
    return page_window.current(event.message.timestamp)
