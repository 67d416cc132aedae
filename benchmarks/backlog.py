"""The backlog rows: every contender reads a pre-produced backlog of `--events` events.

Raw aiokafka (the client's ceiling), Faust's floor, the pipeline on one and on several
workers, the textbook baseline. A pipeline row is timed from its first worker's ready
(`/ready` answers 200): events / (last completion - ready), the wait before the first
scores included; on one worker it also samples how far each stage has come (see
`measure.StageWatch`). Contenders without a ready route are timed from their first
completion (floor, textbook) or from the start of reading (ceiling).
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from benchmarks.figures import Figures, timed_figures
from benchmarks.harness import READY_TIMEOUT_S, Bench
from benchmarks.measure import (
    Mark,
    PredictionReader,
    ProcessSampler,
    RecordsWritten,
    StageWatch,
    page_views_counted,
    percentiles,
)
from topics.catalogue import ENRICHED_EVENTS


def run_ceiling(bench: Bench) -> Figures:
    marks, started = asyncio.run(_read_raw(bench, bench.backlog_topic("bench1-")))
    return timed_figures(marks, started, "start of reading")


async def _read_raw(bench: Bench, topic: str) -> tuple[list[Mark], float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bench.stack.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(bench.config.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        marks: list[Mark] = []
        count = 0
        started = time.time()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while count < bench.config.events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
            n = 0
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value or b"null")
                    n += 1
            if n:
                count += n
                marks.append((time.time(), n))
        return marks, started
    finally:
        await consumer.stop()


def run_floor(bench: Bench) -> Figures:
    topic = bench.backlog_topic("bench1-")
    bench.create_topics("bench-floor-")
    launched = bench.launch("floor", "bench-floor-", input_topic=topic)
    sampler = ProcessSampler(launched.pids)
    sampler.start()
    try:
        bench.wait_for(launched.output.completed, bench.config.events, launched.children)
        peak = sampler.peak_rss(launched.pids[0])
    finally:
        sampler.stop()
        bench.stop_all()
    marks = launched.output.marks()
    first_take = min(moment for moment, _ in marks)
    return timed_figures(marks, first_take, "first take", sampler, peak_rss_mb=peak / 2**20)


def run_pipeline(
    bench: Bench, prefix: str, redis_db: int, workers: int, watch_stages: bool = False
) -> Figures:
    """The pipeline through the backlog, timed from its first worker's ready; with
    `watch_stages`, how far each stage has come, sampled over the run."""
    bench.backlog_topic(prefix)
    launched = bench.launch("pipeline", prefix, redis_db, workers)
    output, children = launched.output, launched.children
    assert isinstance(output, PredictionReader)
    sampler = ProcessSampler(launched.pids)
    sampler.start()
    watch = None
    if watch_stages:
        enriched = ENRICHED_EVENTS.full_name(prefix)
        watch = StageWatch(
            RecordsWritten(bench.stack.bootstrap_servers, enriched, bench.config.partitions),
            scored=output.completed,
            counted=page_views_counted(children[0].base_url),
        )
        watch.start()
    try:
        ready_at = bench.wait_ready(children)
        bench.wait_for(output.completed, bench.config.events, children, what="scored")
        peaks = [sampler.peak_rss(pid) for pid in launched.pids]
    finally:
        sampler.stop()
        if watch is not None:
            watch.stop()
        bench.stop_all()
        output.stop()
    stages = None
    if watch is not None:
        stages = watch.report(
            ready_at, output.first_scored_at(), bench.config.events, bench.backlog_page_views
        )
    return timed_figures(
        output.marks(),
        ready_at,
        "ready",
        sampler,
        latency_ms=percentiles(output.latencies_ms()),
        peak_rss_mb=max(peaks) / 2**20,
        stages=stages,
        extra={
            "workers": workers,
            "latency_note": "backlog: includes time queued",
            "duplicates": output.duplicates,
        },
    )


def run_textbook(bench: Bench) -> Figures:
    topic = bench.backlog_topic("bench1-")
    bench.create_topics("bench-textbook-")
    launched = bench.launch("textbook", "bench-textbook-", 3, input_topic=topic)
    output = launched.output
    assert isinstance(output, PredictionReader)
    sampler = ProcessSampler(launched.pids)
    sampler.start()
    try:
        bench.wait_for(
            output.completed,
            bench.config.events,
            launched.children,
            what="scored",
            cap_s=bench.config.textbook_seconds,
        )
        peak = sampler.peak_rss(launched.pids[0])
    finally:
        sampler.stop()
        bench.stop_all()
        output.stop()
    marks = output.marks()
    return timed_figures(
        marks,
        min(moment for moment, _ in marks),
        "first score",
        sampler,
        latency_ms=percentiles(output.latencies_ms()),
        peak_rss_mb=peak / 2**20,
        extra={
            "capped_at_s": bench.config.textbook_seconds,
            "duplicates": output.duplicates,
        },
    )
