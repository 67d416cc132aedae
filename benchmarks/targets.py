"""The performance issue's targets, judged on one run's figures: reported, never asserted.

A target whose rows were not measured in the run (`--only`, the Quix Streams peer not
installed) reads "not measured", never holds or misses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.figures import Figures
from benchmarks.measure import SPREAD_AT

BURST_OVER_TEXTBOOK = 10.0
BURST_OVER_QUIX = 5.0
BURST_OVER_FLOOR = 0.5
FIRST_SCORE_S = 2.0
SCORED_AT_SPREAD = 0.25
P99_HALF_MS = 50.0
P99_QUARTER_MS = 30.0
CPU_OVER_FLOOR = 2.0
PEAK_RSS_MB = 250.0
SCALE_OUT = 1.7

# Rows whose workers run the pipeline: the peak RSS target is the largest of them.
PIPELINE_ROWS = (
    "pipeline",
    "pipeline_multi",
    "burst",
    "pipeline_half_rate",
    "pipeline_quarter_rate",
)


@dataclass(frozen=True)
class Target:
    """One target: what is compared, the bound, what was measured and whether it holds."""

    what: str
    bound: str
    measured: float | None
    shown: str  # the measured value as the report prints it
    held: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        if self.held is None:
            return "not measured"
        return "holds" if self.held else "missed"

    def as_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "target": self.bound,
            "measured": None if self.measured is None else round(self.measured, 4),
            "shown": self.shown,
            "verdict": self.verdict,
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ratios(results: dict[str, Figures]) -> dict[str, float | None]:
    """Throughput and cost ratios between rows; None where a row was not measured."""

    def rate(name: str, steady: bool = False) -> float | None:
        figures = results.get(name)
        if figures is None:
            return None
        return figures.steady_events_per_s if steady else figures.events_per_s

    def cpu(name: str) -> float | None:
        figures = results.get(name)
        return None if figures is None else figures.cpu_s_per_1k

    return {
        # Bursts, each timed from its first send.
        "burst_over_textbook_burst": ratio(rate("burst"), rate("textbook_burst")),
        "burst_over_quix_burst": ratio(rate("burst"), rate("quix_burst")),
        "burst_over_floor_burst": ratio(rate("burst"), rate("floor_burst")),
        # Backlogs: end to end from ready for the scale-out, steady states for the rest.
        "pipeline_multi_over_pipeline": ratio(rate("pipeline_multi"), rate("pipeline")),
        "pipeline_over_floor": ratio(rate("pipeline", True), rate("floor", True)),
        "pipeline_over_textbook": ratio(rate("pipeline", True), rate("textbook", True)),
        "floor_over_ceiling": ratio(rate("floor", True), rate("ceiling", True)),
        "cpu_per_event_over_floor": ratio(cpu("pipeline"), cpu("floor")),
    }


def evaluate(results: dict[str, Figures], workers: int, customers: int) -> dict[str, Target]:
    """Every target of the issue, in the order the report prints them."""
    ratio_of = ratios(results)

    def at_least(what: str, key: str, bound: float) -> Target:
        value = ratio_of[key]
        return _judge(what, f">= {bound:g}x", value, "{:.2f}x", lambda v: v >= bound)

    def p99_of(name: str, what: str, bound: float) -> Target:
        figures = results.get(name)
        value = None if figures is None or figures.latency_ms is None else figures.latency_ms["p99"]
        return _judge(what, f"<= {bound:g} ms", value, "{:.0f} ms", lambda v: v <= bound)

    rss = [results[n].peak_rss_mb for n in PIPELINE_ROWS if n in results]
    peak = max((mb for mb in rss if mb is not None), default=None)
    cpu = ratio_of["cpu_per_event_over_floor"]
    return {
        "burst_over_textbook": at_least(
            "burst: pipeline / textbook", "burst_over_textbook_burst", BURST_OVER_TEXTBOOK
        ),
        "burst_over_quix": at_least(
            "burst: pipeline / Quix Streams peer", "burst_over_quix_burst", BURST_OVER_QUIX
        ),
        "burst_over_floor": at_least(
            "burst: pipeline / floor", "burst_over_floor_burst", BURST_OVER_FLOOR
        ),
        "first_scores_at_once": _first_scores(results.get("pipeline")),
        "p99_half_rate": p99_of(
            "pipeline_half_rate", "live @ half the burst max: p99 event to score", P99_HALF_MS
        ),
        "p99_quarter_rate": p99_of(
            "pipeline_quarter_rate", "live @ a quarter of it: p99 event to score", P99_QUARTER_MS
        ),
        "cpu_per_event": _judge(
            "CPU per event: pipeline / floor (backlog rows)",
            f"<= {CPU_OVER_FLOOR:g}x",
            cpu,
            "{:.2f}x",
            lambda v: v <= CPU_OVER_FLOOR,
        ),
        "peak_rss": _judge(
            f"peak worker RSS, pipeline rows ({customers:,} customers; the target's: 100,000)",
            f"<= {PEAK_RSS_MB:g} MB",
            peak,
            "{:.0f} MB",
            lambda v: v <= PEAK_RSS_MB,
        ),
        "scale_out": at_least(
            f"backlog: {workers} workers / 1 worker", "pipeline_multi_over_pipeline", SCALE_OUT
        ),
    }


def _judge(
    what: str, bound: str, value: float | None, shown: str, holds: Callable[[float], bool]
) -> Target:
    """A target on one value, printed with the format `shown`; not measured without one."""
    if value is None:
        return Target(what, bound, None, "not measured", None)
    return Target(what, bound, value, shown.format(value), holds(value))


def _first_scores(pipeline: Figures | None) -> Target:
    """First score <= FIRST_SCORE_S after ready, and >= SCORED_AT_SPREAD of the backlog
    scored when enrichment had written SPREAD_AT of it (stages progress together)."""
    what = "backlog: first scores at once"
    bound = (
        f"first score <= {FIRST_SCORE_S:g} s after ready and >= {SCORED_AT_SPREAD:.0%} "
        f"scored at {SPREAD_AT:.0%} enriched"
    )
    stages = pipeline.stages if pipeline is not None else None
    if stages is None or stages.first_score_s is None or stages.scored_share is None:
        return Target(what, bound, None, "not measured", None)
    shown = (
        f"first score {stages.first_score_s:.2f} s after ready, "
        f"{stages.scored_share:.0%} scored at {SPREAD_AT:.0%} enriched"
    )
    held = stages.first_score_s <= FIRST_SCORE_S and stages.scored_share >= SCORED_AT_SPREAD
    return Target(what, bound, stages.first_score_s, shown, held)
