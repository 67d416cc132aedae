"""The benchmark's pure parts: the stage spread, a row's end-to-end timing and the target
verdicts, on figures made up here (no broker, no worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.figures import Figures, timed_figures
from benchmarks.measure import MarksFile, stage_report
from benchmarks.targets import evaluate, ratios


def figures(rate: float, **optional: object) -> Figures:
    return Figures(
        events=1000,
        events_per_s=rate,
        elapsed_s=1000 / rate,
        timed_from="first send",
        steady_events_per_s=rate,
        window_events=800,
        window_s=800 / rate,
        **optional,  # type: ignore[arg-type]
    )


def test_stage_spread_is_read_where_enrichment_reaches_half_the_backlog() -> None:
    ready = 1000.0
    samples = [
        (ready + 1.0, {"enriched": 100, "scored": 0, "counted": 0}),
        (ready + 2.0, {"enriched": 499, "scored": 50, "counted": 40}),
        (ready + 3.0, {"enriched": 500, "scored": 300, "counted": None}),
        (ready + 4.0, {"enriched": 1000, "scored": 900, "counted": 800}),
    ]
    report = stage_report(ready, ready + 0.5, ready + 1.5, samples, events=1000, page_views=800)
    assert report.first_enriched_s == pytest.approx(0.5)
    assert report.first_score_s == pytest.approx(1.5)
    assert report.spread_at_s == pytest.approx(3.0)
    assert report.scored_share == pytest.approx(0.3)
    assert report.counted_share is None  # the counting probe had no answer then
    assert [point["s"] for point in report.as_json()["progress"]] == [1.0, 2.0, 3.0, 4.0]


def test_a_stage_waiting_for_the_backlog_misses_first_scores_at_once() -> None:
    ready = 1000.0
    samples = [(ready + 5.0, {"enriched": 600, "scored": 0, "counted": 0})]
    waiting = stage_report(ready, ready + 0.1, ready + 25.0, samples, events=1000, page_views=800)
    together = stage_report(ready, ready + 0.1, ready + 0.4, [
        (ready + 5.0, {"enriched": 600, "scored": 400, "counted": 300}),
    ], events=1000, page_views=800)  # fmt: skip
    held = {
        name: evaluate({"pipeline": figures(3000.0, stages=stages)}, 2, 1000)[
            "first_scores_at_once"
        ].verdict
        for name, stages in (("waiting", waiting), ("together", together))
    }
    assert held == {"waiting": "missed", "together": "holds"}


def test_targets_of_rows_not_measured_read_not_measured() -> None:
    results = {"burst": figures(2000.0), "floor_burst": figures(5000.0)}
    targets = evaluate(results, workers=2, customers=1000)
    assert targets["burst_over_floor"].verdict == "missed"
    assert targets["burst_over_floor"].measured == pytest.approx(0.4)
    for key in ("burst_over_textbook", "burst_over_quix", "p99_half_rate", "scale_out"):
        assert targets[key].verdict == "not measured", key
        assert targets[key].measured is None
    assert ratios(results)["burst_over_textbook_burst"] is None


def test_live_and_cost_targets_hold_or_miss_on_their_bounds() -> None:
    results = {
        "pipeline": figures(3000.0, cpu_s_per_1k=0.4, peak_rss_mb=240.0),
        "floor": figures(9000.0, cpu_s_per_1k=0.25),
        "pipeline_multi": figures(5400.0),
        "pipeline_half_rate": figures(1000.0, latency_ms={"p50": 20.0, "p95": 40.0, "p99": 50.0}),
        "pipeline_quarter_rate": figures(500.0, latency_ms={"p50": 20.0, "p95": 30.0, "p99": 31.0}),
    }
    verdicts = {key: target.verdict for key, target in evaluate(results, 2, 100_000).items()}
    assert verdicts["p99_half_rate"] == "holds"  # 50 ms is within <= 50 ms
    assert verdicts["p99_quarter_rate"] == "missed"
    assert verdicts["cpu_per_event"] == "holds"  # 1.6x the floor
    assert verdicts["peak_rss"] == "holds"
    assert verdicts["scale_out"] == "holds"  # 1.8x


def test_a_row_is_timed_from_its_start_to_its_last_completion_or_a_later_end() -> None:
    marks = [(10.5, 100), (11.0, 100), (12.0, 200)]
    row = timed_figures(marks, start=10.0, timed_from="first send")
    assert row.events == 400
    assert row.elapsed_s == pytest.approx(2.0)
    assert row.events_per_s == pytest.approx(200.0)
    later = timed_figures(marks, start=10.0, timed_from="first send", end=14.0)
    assert later.events_per_s == pytest.approx(100.0)


def test_marks_since_a_moment_leave_the_warm_up_out(tmp_path: Path) -> None:
    marks = MarksFile(tmp_path / "marks.txt")
    assert marks.completed() == 0
    marks.path.write_text("100.000000 200\n105.500000 300\n106.000000 50\n")
    assert marks.completed() == 550
    assert marks.completed(since_ms=105_500) == 350
