"""`python -m benchmarks`: every contender on the same backlog, a table, and JSON."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import orjson
from click.decorators import FC

from benchmarks.harness import WORKER_SETTINGS, Bench, BenchConfig, BenchError, Figures, machine
from streamer.commands.common import CONTEXT_SETTINGS, broker_option, customers_option
from streamer.devstack import EmbeddedStack, StackError

# Targets from the performance issue: reported, never asserted.
TARGET_OVER_FLOOR = 0.5
TARGET_OVER_TEXTBOOK = 10.0
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 250.0

LABELS = {
    "ceiling": "raw aiokafka consumer (ceiling)",
    "floor": "Faust take agent, no work (floor)",
    "textbook": "textbook per-event agents",
    "pipeline": "pipeline, 1 worker",
    "pipeline_multi": "pipeline, {workers} workers",
    "pipeline_half_rate": "pipeline, 1 worker, live @ half max",
    "pipeline_quarter_rate": "pipeline, 1 worker, live @ quarter max",
}


def worker_setting_option(field: str, type: click.ParamType, scope: str) -> Callable[[FC], FC]:
    """--FIELD: a worker setting the contenders' workers get instead of their default."""
    variable = WORKER_SETTINGS[field]
    return click.option(
        "--" + field.replace("_", "-"),
        type=type,
        default=None,
        help=f"{variable} {scope} (default: the worker's)",
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@broker_option
@customers_option(100_000, help="customer profiles loaded into Redis")
@click.option(
    "--events", type=click.IntRange(min=100), default=100_000,
    help="events pre-produced to the input topic (the backlog every contender reads)",
)  # fmt: skip
@click.option(
    "--workers", type=click.IntRange(min=2), default=2,
    help="workers of the multi-worker pipeline run (beside the one-worker run)",
)  # fmt: skip
@click.option(
    "--partitions", type=click.IntRange(min=1), default=4,
    help="partitions of every topic (at least --workers)",
)  # fmt: skip
@click.option(
    "--live-seconds", type=click.FloatRange(min=1), default=20.0,
    help="duration of each live run (at half and a quarter of the measured maximum rate)",
)  # fmt: skip
@click.option(
    "--textbook-seconds", type=click.FloatRange(min=1), default=30.0,
    help="the textbook baseline stops after this long (it is slow)",
)  # fmt: skip
@worker_setting_option("batch_size", click.IntRange(min=1), "for the pipeline and floor")
@worker_setting_option("batch_within", click.FloatRange(min=0, min_open=True), "seconds")
@worker_setting_option(
    "fetch_max_wait", click.FloatRange(min=0, min_open=True, max=1.5), "seconds for the pipeline"
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results/results.json"),
    help="where the JSON figures go (bench-results/ is git-ignored)",
)  # fmt: skip
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="keep logs and scratch files here (default: a temporary folder, removed on success)",
)  # fmt: skip
def bench(output: Path, workdir: Path | None, **options: Any) -> None:
    """Benchmark the pipeline against Faust's floor, a textbook baseline and raw aiokafka."""
    # Every option but --output and --workdir is the BenchConfig field of its name.
    workers, partitions = options["workers"], options["partitions"]
    if partitions < workers:
        raise click.BadParameter(
            f"--partitions ({partitions}) must be at least --workers ({workers})"
        )
    scratch = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="streamer-bench-")) if workdir is None else workdir
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = BenchConfig(workdir=folder, **options)
    started = time.monotonic()
    runner = Bench(config, lambda line: click.echo(line, err=True))
    results: dict[str, Figures] = {}
    try:
        runner.setup()
        steps = (
            ("ceiling", runner.run_ceiling),
            ("floor", runner.run_floor),
            ("pipeline", lambda: runner.run_pipeline("bench1-", 1, 1)),
            ("pipeline_multi", lambda: runner.run_pipeline("bench2-", 2, workers)),
            ("textbook", runner.run_textbook),
            (
                "pipeline_half_rate",
                lambda: runner.run_live(results["pipeline"].events_per_s / 2),
            ),
            # A second load point: how latency grows as the worker approaches saturation.
            (
                "pipeline_quarter_rate",
                lambda: runner.run_live(
                    results["pipeline"].events_per_s / 4,
                    prefix="bench-live-quarter-",
                    redis_db=5,
                    seed=3,
                ),
            ),
        )
        for name, step in steps:
            runner.say(f"running {LABELS[name].format(workers=workers)}")
            results[name] = step()
            runner.say(f"  {results[name].events_per_s:,.0f} events/s")
    except (BenchError, StackError) as exc:
        raise click.ClickException(f"{exc} (logs kept in {folder})") from None
    finally:
        runner.close()
    wall = time.monotonic() - started
    report = build_report(config, results, wall, runner.stack)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    click.echo(render_table(report))
    runner.say(f"figures written to {output} ({wall:.0f}s in all)")
    if scratch:
        shutil.rmtree(folder, ignore_errors=True)


def build_report(
    config: BenchConfig, results: dict[str, Figures], wall: float, stack: EmbeddedStack
) -> dict[str, Any]:
    """The JSON document: broker, configuration, machine, each contender, ratios and targets."""
    rate = {name: figures.events_per_s for name, figures in results.items()}
    pipeline, live = results["pipeline"], results["pipeline_half_rate"]
    ratios = {
        "pipeline_over_floor": _ratio(rate["pipeline"], rate["floor"]),
        "pipeline_over_textbook": _ratio(rate["pipeline"], rate["textbook"]),
        "pipeline_multi_over_pipeline": _ratio(rate["pipeline_multi"], rate["pipeline"]),
        "floor_over_ceiling": _ratio(rate["floor"], rate["ceiling"]),
    }
    p99 = (live.latency_ms or {}).get("p99", float("inf"))
    rss = pipeline.peak_rss_mb or float("inf")
    return {
        "broker": stack.broker_name,
        "broker_kind": stack.broker_kind,
        "broker_reason": stack.broker_reason,
        "config": {k: v for k, v in asdict(config).items() if k != "workdir"},
        "machine": machine(),
        "wall_seconds": round(wall, 1),
        "contenders": {name: figures.as_json() for name, figures in results.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": {
            "pipeline_over_floor_ge_0.5": ratios["pipeline_over_floor"] >= TARGET_OVER_FLOOR,
            "pipeline_over_textbook_ge_10": ratios["pipeline_over_textbook"]
            >= TARGET_OVER_TEXTBOOK,
            "p99_half_rate_le_50ms": p99 <= TARGET_P99_MS,
            "worker_peak_rss_le_250mb": rss <= TARGET_RSS_MB,
        },
    }


def render_table(report: dict[str, Any]) -> str:
    """The human-readable table (Markdown, so it pastes into the README)."""
    cfg = report["config"]
    rows = [
        "| contender | events/s | p50 ms | p95 ms | p99 ms | peak RSS MB | CPU s / 1k events |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in report["contenders"].items():
        latency = figures.get("latency_ms") or {}
        rows.append(
            "| {label} | {rate:,.0f} | {p50} | {p95} | {p99} | {rss} | {cpu} |".format(
                label=LABELS[name].format(workers=cfg["workers"]),
                rate=figures["events_per_s"],
                p50=_cell(latency.get("p50")),
                p95=_cell(latency.get("p95")),
                p99=_cell(latency.get("p99")),
                rss=_cell(figures.get("peak_rss_mb"), "{:.0f}"),
                cpu=_cell(figures.get("cpu_s_per_1k"), "{:.3f}"),
            )
        )
    ratios, targets = report["ratios"], report["targets"]
    repeats = [
        f"{LABELS[name].format(workers=cfg['workers'])}: {figures['duplicates']:,}"
        for name, figures in report["contenders"].items()
        if figures.get("duplicates")
    ]
    lines = [
        f"broker: {report['broker']} ({report['broker_reason']})",
        f"{cfg['customers']:,} customers, {cfg['events']:,} events, "
        f"{cfg['partitions']} partitions; {report['machine']['cpus']} CPUs "
        f"({report['machine']['cpu']}); {report['wall_seconds']:.0f}s wall",
        "",
        *rows,
        "",
        "Backlog latencies include the time an event waited in the backlog.",
        *(
            ["Events scored more than once (not counted above): " + "; ".join(repeats)]
            if repeats
            else []
        ),
        f"pipeline / floor    = {ratios['pipeline_over_floor']:.2f}  (target >= 0.5: "
        f"{_verdict(targets['pipeline_over_floor_ge_0.5'])})",
        f"pipeline / textbook = {ratios['pipeline_over_textbook']:.1f}  (target >= 10: "
        f"{_verdict(targets['pipeline_over_textbook_ge_10'])})",
        f"{cfg['workers']} workers / 1 worker = {ratios['pipeline_multi_over_pipeline']:.2f}",
        f"p99 at half max rate <= 50 ms: {_verdict(targets['p99_half_rate_le_50ms'])}; "
        f"worker peak RSS <= 250 MB: {_verdict(targets['worker_peak_rss_le_250mb'])}",
    ]
    return "\n".join(lines)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def _cell(value: float | None, fmt: str = "{:.0f}") -> str:
    return "" if value is None else fmt.format(value)


def _verdict(held: bool) -> str:
    return "holds" if held else "missed"
