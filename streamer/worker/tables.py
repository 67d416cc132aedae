"""Faust tables of page views.

Per-page counts are keyed `"{partition}:{page}"` (`streamer.worker.stages.counting.page_key`
says why); a page's count is the sum over partitions, which `streamer.worker.web` gathers
across workers.
"""

from __future__ import annotations

import faust
from faust.types import TableT

from streamer.worker.app import app, settings

# The app's default serializer is raw bytes (for topics); table keys and counts are JSON.
JSON_SCHEMA: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")


def _counts(name: str, description: str) -> TableT[str, int]:
    """A table of counts, partitioned like the topics so it stays co-partitioned."""
    return app.Table(
        name,
        default=int,
        partitions=settings.topics.partitions,
        schema=JSON_SCHEMA,
        help=description,
    )


page_views_total = _counts("page-views-total", "Page views per partition and page, all time")
page_views_windowed = _counts(
    "page-views-windowed", "Page views per partition and page, in tumbling windows"
).tumbling(settings.worker.page_window, expires=settings.worker.page_window_expires)
customer_page_views = _counts("customer-page-views", "Page views per customer")
