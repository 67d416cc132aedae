"""Faust's floor: a `take` agent that does nothing with raw bytes, on the benchmark backlog.

Run as `faust -A benchmarks.floor worker`. Env: KAFKA_BROKER, BENCH_INPUT_TOPIC,
BENCH_APP_ID, BENCH_MARKS (file), STREAMER_BATCH_SIZE/STREAMER_BATCH_WITHIN (the same
micro-batch shape the pipeline uses). Each batch appends "epoch_seconds count" to the
marks file, which the harness reads to time the run.
"""

from __future__ import annotations

import os
import time

import faust
from faust.types import StreamT

from streamer.settings import get_settings
from streamer.worker.faust_app import faust_app_options

settings = get_settings()

# Stock faust.App, none of the worker's transport fixes, on the worker's settings.
app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-floor"),
    **faust_app_options(settings),
    key_serializer="raw",
    value_serializer="raw",
)

source = app.topic(
    os.environ.get("BENCH_INPUT_TOPIC", "customer-events"),
    key_serializer="raw",
    value_serializer="raw",
)


@app.agent(source, name="floor")
async def floor(stream: StreamT[bytes]) -> None:
    """Take micro-batches and drop them; record when each batch arrived."""
    # Line-buffered: one small write per batch, visible to the harness at once.
    with open(os.environ["BENCH_MARKS"], "a", buffering=1) as marks:
        async for batch in stream.take(
            settings.worker.batch_size, within=settings.worker.batch_within
        ):
            marks.write(f"{time.time():.6f} {len(batch)}\n")
