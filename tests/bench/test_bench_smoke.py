"""`streamer bench` end to end with tiny sizes: every contender measured, JSON written.

No timing thresholds: figures on a shared machine say nothing; only that each is there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

STREAMER = str(Path(sys.executable).with_name("streamer"))
CONTENDERS = (
    "ceiling",
    "floor",
    "pipeline",
    "pipeline_multi",
    "textbook",
    "pipeline_half_rate",
    "pipeline_quarter_rate",
)


def test_bench_writes_every_contenders_figures(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    command = [
        STREAMER,
        "bench",
        "--customers",
        "500",
        "--events",
        "2000",
        "--live-seconds",
        "3",
        "--textbook-seconds",
        "5",
        "--output",
        str(output),
        "--workdir",
        str(tmp_path / "work"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pipeline / floor" in done.stdout
    report = orjson.loads(output.read_bytes())
    for name in CONTENDERS:
        figures = report["contenders"][name]
        assert figures["events"] > 0, (name, figures)
        assert figures["events_per_s"] > 0, (name, figures)
    for name in CONTENDERS[2:]:
        figures = report["contenders"][name]
        assert figures["latency_ms"]["p99"] > 0, (name, figures)
        assert figures["peak_rss_mb"] > 0, (name, figures)
        assert figures["cpu_s_per_1k"] > 0, (name, figures)
    assert report["ratios"]["pipeline_over_floor"] > 0
    assert report["ratios"]["pipeline_over_textbook"] > 0


def test_bad_flags_get_one_line_errors(tmp_path: Path) -> None:
    for flags in (["--events", "5"], ["--workers", "4", "--partitions", "2"]):
        done = subprocess.run(
            [STREAMER, "bench", *flags],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("streamer: error:"), done.stderr
