"""`python -m benchmarks`: every contender in one run, a table, the targets, and JSON."""

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

from benchmarks.backlog import run_ceiling, run_floor, run_pipeline, run_textbook
from benchmarks.figures import Figures
from benchmarks.harness import WORKER_SETTINGS, Bench, BenchConfig, BenchError, NotMeasured, machine
from benchmarks.measure import SPREAD_AT
from benchmarks.running import run_burst, run_live, run_quix_burst
from benchmarks.targets import FIRST_SCORE_S, SCORED_AT_SPREAD, evaluate, ratios
from streamer.commands.common import CONTEXT_SETTINGS, broker_option, customers_option
from streamer.devstack import EmbeddedStack, StackError

# Every row, in the order they run (the live rows need the burst's rate) and print.
LABELS = {
    "ceiling": "raw aiokafka consumer (ceiling), backlog",
    "floor": "Faust take agent, no work (floor), backlog",
    "pipeline": "pipeline, 1 worker, backlog",
    "pipeline_multi": "pipeline, {workers} workers, backlog",
    "textbook": "textbook per-event agents, backlog",
    "floor_burst": "Faust floor, burst",
    "burst": "pipeline, 1 worker, burst",
    "textbook_burst": "textbook per-event agents, burst",
    "quix_burst": "Quix Streams peer, burst",
    "pipeline_half_rate": "pipeline, 1 worker, live @ half burst max",
    "pipeline_quarter_rate": "pipeline, 1 worker, live @ quarter burst max",
}

Step = Callable[[dict[str, Figures]], Figures]


def steps(runner: Bench) -> dict[str, Step]:
    """How each row is measured. Every row that counts has its own Redis database (1, 2:
    pipeline backlogs; 3: textbook; 4, 5: live; 6, 7, 8: bursts) and topic prefix."""
    cfg = runner.config

    def live(share: int, prefix: str, redis_db: int, seed: int) -> Step:
        def step(results: dict[str, Figures]) -> Figures:
            if "burst" not in results:
                raise NotMeasured("not measured: needs the burst row")
            rate = results["burst"].events_per_s / share
            return run_live(runner, rate, prefix, redis_db, seed)

        return step

    return {
        "ceiling": lambda _: run_ceiling(runner),
        "floor": lambda _: run_floor(runner),
        "pipeline": lambda _: run_pipeline(runner, "bench1-", 1, 1, watch_stages=True),
        "pipeline_multi": lambda _: run_pipeline(runner, "bench2-", 2, cfg.workers),
        "textbook": lambda _: run_textbook(runner),
        "floor_burst": lambda _: run_burst(runner, "floor", "bench-floor-burst-"),
        "burst": lambda _: run_burst(runner, "pipeline", "bench-burst-", 6),
        # Not capped: its stages run one after the other (enrichment takes the burst
        # first), so a capped rate would time its wait, not its speed.
        "textbook_burst": lambda _: run_burst(runner, "textbook", "bench-textbook-burst-", 7),
        "quix_burst": lambda _: run_quix_burst(runner, "bench-quix-burst-", 8),
        "pipeline_half_rate": live(2, "bench-live-", 4, seed=2),
        # A second load point: how latency grows as the worker approaches saturation.
        "pipeline_quarter_rate": live(4, "bench-live-quarter-", 5, seed=3),
    }


def parse_only(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str]:
    """--only NAME[,NAME...]: the rows to run, each a key of LABELS."""
    if value is None:
        return list(LABELS)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in LABELS]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown row {', '.join(unknown) or repr(value)} (choose from {', '.join(LABELS)})"
        )
    return names


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
    help="events pre-produced to the input topic (the backlog every backlog row reads)",
)  # fmt: skip
@click.option(
    "--burst-events", type=click.IntRange(min=100), default=20_000,
    help="page views of the burst sent into each running contender",
)  # fmt: skip
@click.option(
    "--burst-customers", type=click.IntRange(min=1), default=1_000,
    help="customers the burst's page views are spread over (at most --customers)",
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
    help="duration of each live run (at half and a quarter of the burst's rate)",
)  # fmt: skip
@click.option(
    "--textbook-seconds", type=click.FloatRange(min=1), default=30.0,
    help="the textbook's backlog row stops this long after its first score (it is slow); "
    "its burst runs until every event is scored",
)  # fmt: skip
@click.option(
    "--only", metavar="NAME[,NAME...]", callback=parse_only, default=None,
    help="run these rows only (" + ", ".join(LABELS) + "); rows and targets that need a "
    "skipped row read 'not measured'",
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
def bench(output: Path, workdir: Path | None, only: list[str], **options: Any) -> None:
    """Benchmark the pipeline against Faust's floor, a textbook baseline, a Quix Streams
    peer and raw aiokafka: backlogs, bursts into running workers, live loads."""
    # Every option but --output, --workdir and --only is the BenchConfig field of its name.
    workers, partitions = options["workers"], options["partitions"]
    if partitions < workers:
        raise click.BadParameter(
            f"--partitions ({partitions}) must be at least --workers ({workers})"
        )
    if options["burst_customers"] > options["customers"]:
        raise click.BadParameter(
            f"--burst-customers ({options['burst_customers']}) must be at most "
            f"--customers ({options['customers']})"
        )
    scratch = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="streamer-bench-")) if workdir is None else workdir
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    config = BenchConfig(workdir=folder, **options)
    started = time.monotonic()
    runner = Bench(config, lambda line: click.echo(line, err=True))
    results: dict[str, Figures] = {}
    skipped = {name: "not run (--only)" for name in LABELS if name not in only}
    try:
        runner.setup()
        for name, step in steps(runner).items():
            if name not in only:
                continue
            runner.say(f"running {LABELS[name].format(workers=workers)}")
            try:
                results[name] = step(results)
            except NotMeasured as exc:
                skipped[name] = str(exc)
                runner.say(f"  {exc}")
                continue
            runner.say(f"  {results[name].events_per_s:,.0f} events/s")
    except (BenchError, StackError) as exc:
        raise click.ClickException(f"{exc} (logs kept in {folder})") from None
    finally:
        runner.close()
    wall = time.monotonic() - started
    report = build_report(config, only, results, skipped, wall, runner.stack)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    click.echo(render_table(report))
    runner.say(f"figures written to {output} ({wall:.0f}s in all)")
    if scratch:
        shutil.rmtree(folder, ignore_errors=True)


def build_report(
    config: BenchConfig,
    only: list[str],
    results: dict[str, Figures],
    skipped: dict[str, str],
    wall: float,
    stack: EmbeddedStack,
) -> dict[str, Any]:
    """The JSON document: broker, configuration, machine, each row, ratios and targets."""
    targets = evaluate(results, config.workers, config.customers)
    return {
        "broker": stack.broker_name,
        "broker_kind": stack.broker_kind,
        "broker_reason": stack.broker_reason,
        "config": {
            **{k: v for k, v in asdict(config).items() if k != "workdir"},
            "only": only,
        },
        "machine": machine(),
        "wall_seconds": round(wall, 1),
        "contenders": {
            name: {"broker": stack.broker_name, **results[name].as_json()}
            for name in LABELS
            if name in results
        },
        "not_measured": {name: skipped[name] for name in LABELS if name in skipped},
        "ratios": {k: None if v is None else round(v, 3) for k, v in ratios(results).items()},
        "targets": {key: target.as_json() for key, target in targets.items()},
    }


TABLE_HEADER = [
    "| contender | broker | timed from | events | events/s | steady events/s "
    "| p50 ms | p95 ms | p99 ms | peak RSS MB | CPU s / 1k events |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def render_table(report: dict[str, Any]) -> str:
    """The human-readable table (Markdown, so it pastes into the README), what each column
    means, the backlog's stage progress, and one line per target."""
    cfg, broker = report["config"], report["broker"]
    rows = list(TABLE_HEADER)
    for name, label in LABELS.items():
        label = label.format(workers=cfg["workers"])
        if name in report["not_measured"]:
            reason = report["not_measured"][name]
            rows.append(f"| {label} | {broker} | {reason} |" + " |" * 8)
            continue
        figures = report["contenders"][name]
        latency = figures.get("latency_ms") or {}
        cells = [
            label,
            broker,
            figures["timed_from"],
            _events_cell(figures),
            f"{figures['events_per_s']:,.0f}",
            f"{figures['steady_events_per_s']:,.0f}",
            *(_cell(latency.get(q)) for q in ("p50", "p95", "p99")),
            _cell(figures.get("peak_rss_mb")),
            _cell(figures.get("cpu_s_per_1k"), "{:.3f}"),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    repeats = [
        f"{LABELS[name].format(workers=cfg['workers'])}: {figures['duplicates']:,}"
        for name, figures in report["contenders"].items()
        if figures.get("duplicates")
    ]
    lines = [
        f"broker: {broker} ({report['broker_reason']})",
        f"{cfg['customers']:,} customers, {cfg['events']:,} backlog events, bursts of "
        f"{cfg['burst_events']:,} page views over {cfg['burst_customers']:,} customers, "
        f"{cfg['partitions']} partitions; {report['machine']['cpus']} CPUs "
        f"({report['machine']['cpu']}); {report['wall_seconds']:.0f}s wall",
        "",
        *rows,
        "",
        "events/s = events / (last completion - the 'timed from' moment): ready is the "
        "worker's /ready answering 200, first send the burst's or the paced load's first "
        "event; steady = the middle 80% of completions. An event counts once its prediction "
        "record exists (and, in a burst, its page view is in the profile); the floor's once "
        "taken. A capped row counts what completed by its cap. Backlog latencies include "
        "the time an event waited in the backlog; burst latencies are from the first send.",
        *_stages_lines(report["contenders"].get("pipeline")),
        *(
            ["Events scored more than once (not counted above): " + "; ".join(repeats)]
            if repeats
            else []
        ),
        "",
        *(_target_line(target) for target in report["targets"].values()),
    ]
    return "\n".join(lines)


def _stages_lines(pipeline: dict[str, Any] | None) -> list[str]:
    definition = (
        f"Stage spread: the share of the backlog scored when enrichment has written "
        f"{SPREAD_AT:.0%} of it (records in customer-events-enriched, sampled every 0.2 s); "
        f"first scores at once = first score <= {FIRST_SCORE_S:g} s after ready and "
        f">= {SCORED_AT_SPREAD:.0%} scored at {SPREAD_AT:.0%} enriched."
    )
    stages = (pipeline or {}).get("stages")
    if stages is None:
        return [definition]
    counted = stages["counted_share"]
    spread = (
        "enrichment never reached it in the samples"
        if stages["scored_share"] is None
        else f"when enrichment had written {SPREAD_AT:.0%} of the backlog "
        f"({_cell(stages['spread_at_s'], '{:.1f}')} s), {stages['scored_share']:.0%} was "
        f"scored and {'?' if counted is None else f'{counted:.0%}'} of its page views counted"
    )
    return [
        f"Stages, pipeline 1 worker backlog: first enriched record "
        f"{_cell(stages['first_enriched_s'], '{:.2f}')} s and first score "
        f"{_cell(stages['first_score_s'], '{:.2f}')} s after ready; {spread}.",
        definition,
    ]


def _target_line(target: dict[str, Any]) -> str:
    return f"{target['what']}: {target['shown']} (target {target['target']}): {target['verdict']}"


def _events_cell(figures: dict[str, Any]) -> str:
    sent = figures.get("sent")
    return f"{figures['events']:,}" if sent is None else f"{figures['events']:,} / {sent:,}"


def _cell(value: float | None, fmt: str = "{:.0f}") -> str:
    return "" if value is None else fmt.format(value)
