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

page_views_total: TableT[str, int] = app.Table(
    "page-views-total",
    default=int,
    partitions=settings.topic_partitions,
    schema=JSON_SCHEMA,
    help="Page views per partition and page, all time",
)

page_views_windowed = app.Table(
    "page-views-windowed",
    default=int,
    partitions=settings.topic_partitions,
    schema=JSON_SCHEMA,
    help="Page views per partition and page, in tumbling windows",
).tumbling(settings.page_window_s, expires=settings.page_window_expires_s)

customer_page_views: TableT[str, int] = app.Table(
    "customer-page-views",
    default=int,
    partitions=settings.topic_partitions,
    schema=JSON_SCHEMA,
    help="Page views per customer",
)
