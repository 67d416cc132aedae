"""One row's figures: what a user sees (events from a start moment to the last
completion), the steady state beside it, latency, peak RSS and CPU per event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.measure import Mark, ProcessSampler, StageReport, Window, steady_window


@dataclass
class Figures:
    """One contender's measured figures (JSON-ready).

    `events_per_s` is what a user sees: `events` / `elapsed_s`, from `timed_from` (the
    first send, the worker's ready, ...) to the last completion; `steady_events_per_s` is
    the middle 80% of completions (`window_events` in `window_s`).
    """

    events: int
    events_per_s: float
    elapsed_s: float
    timed_from: str
    steady_events_per_s: float
    window_events: int
    window_s: float
    latency_ms: dict[str, float] | None = None
    peak_rss_mb: float | None = None
    cpu_s_per_1k: float | None = None
    stages: StageReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "events": self.events,
            "events_per_s": round(self.events_per_s, 1),
            "elapsed_s": round(self.elapsed_s, 3),
            "timed_from": self.timed_from,
            "steady_events_per_s": round(self.steady_events_per_s, 1),
            "window_events": self.window_events,
            "window_s": round(self.window_s, 3),
        }
        if self.latency_ms is not None:
            data["latency_ms"] = {k: round(v, 1) for k, v in self.latency_ms.items()}
        if self.peak_rss_mb is not None:
            data["peak_rss_mb"] = round(self.peak_rss_mb, 1)
        if self.cpu_s_per_1k is not None:
            data["cpu_s_per_1k"] = round(self.cpu_s_per_1k, 4)
        if self.stages is not None:
            data["stages"] = self.stages.as_json()
        data.update(self.extra)
        return data


def timed_figures(
    marks: list[Mark],
    start: float,
    timed_from: str,
    sampler: ProcessSampler | None = None,
    end: float | None = None,
    **optional: Any,
) -> Figures:
    """Figures of completions `marks` timed from `start` (epoch seconds) to the last one, or
    to `end` when something else finished later; CPU over the steady window."""
    window = steady_window(marks, start)
    events = sum(n for _, n in marks)
    last = max((moment for moment, _ in marks), default=start)
    elapsed = max(last, end or last) - start
    return Figures(
        events=events,
        events_per_s=events / elapsed if elapsed > 0 else 0.0,
        elapsed_s=elapsed,
        timed_from=timed_from,
        steady_events_per_s=window.rate,
        window_events=window.events,
        window_s=window.end - window.start,
        cpu_s_per_1k=_cpu_per_1k(sampler, window) if sampler is not None else None,
        **optional,
    )


def _cpu_per_1k(sampler: ProcessSampler, window: Window) -> float | None:
    if window.events == 0:
        return None
    return sampler.cpu_between(window.start, window.end) / window.events * 1000
