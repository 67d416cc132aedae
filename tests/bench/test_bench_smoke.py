"""The benchmark (`python -m benchmarks`) end to end with tiny sizes: every row measured,
every target judged, JSON written; `--only` runs a subset without failing on the rest.

No timing thresholds: figures on a shared machine say nothing; only that each is there.
The run uses `--broker auto`, the broker `streamer dev` would pick here (Apache Kafka
where Java and its jars are at hand, else Tansu), and must say which in table and JSON.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from streamer.devstack import BROKER_NAMES, choose_broker
from streamer.devstack.kafka import CACHE_VARIABLE, kafka_version

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Run from another folder, as `make bench` may be: the package is found through PYTHONPATH.
BENCH = [sys.executable, "-m", "benchmarks"]


def bench_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    return {**os.environ, "PYTHONPATH": path, **extra}


# Rows with a prediction record per event (latency, RSS and CPU measured).
SCORED_ROWS = (
    "pipeline",
    "pipeline_multi",
    "textbook",
    "burst",
    "textbook_burst",
    "pipeline_half_rate",
    "pipeline_quarter_rate",
)
ROWS = ("ceiling", "floor", "floor_burst", *SCORED_ROWS)
TARGETS = (
    "burst_over_textbook",
    "burst_over_quix",
    "burst_over_floor",
    "first_scores_at_once",
    "p99_half_rate",
    "p99_quarter_rate",
    "cpu_per_event",
    "peak_rss",
    "scale_out",
)
BURST_EVENTS = 600


def run_bench(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    output = tmp_path / "bench.json"
    command = [
        *BENCH,
        "--broker", "auto",
        "--customers", "500",
        "--events", "2000",
        "--burst-events", str(BURST_EVENTS),
        "--burst-customers", "100",
        "--live-seconds", "3",
        "--textbook-seconds", "5",
        "--output", str(output),
        "--workdir", str(tmp_path / "work"),
        *flags,
    ]  # fmt: skip
    # The repository's jar cache, not one in tmp_path (the command runs there): Apache
    # Kafka's jars are fetched once, not per test.
    cache = os.environ.get(CACHE_VARIABLE) or str(ROOT / ".streamer" / "kafka")
    env = bench_env(**{CACHE_VARIABLE: cache})
    # A guard against a hung run, not a performance bound.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=1200, cwd=tmp_path, env=env
    )
    return done, output


def test_bench_writes_every_rows_figures_and_every_target(tmp_path: Path) -> None:
    done, output = run_bench(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    cache = os.environ.get(CACHE_VARIABLE) or str(ROOT / ".streamer" / "kafka")
    kind, _ = choose_broker("auto", Path(cache))
    expected = f"Apache Kafka {kafka_version()}" if kind == "kafka" else BROKER_NAMES[kind]
    assert f"broker: {expected} (" in done.stdout
    report = orjson.loads(output.read_bytes())
    assert report["broker"] == expected
    assert report["broker_kind"] == kind
    assert report["config"]["broker"] == "auto"
    assert done.stdout.count(f"| {expected} |") == len(ROWS) + 1  # and the Quix peer's row
    for name in ROWS:
        figures = report["contenders"][name]
        assert figures["broker"] == expected, (name, figures)
        assert figures["events"] > 0, (name, figures)
        assert figures["events_per_s"] > 0, (name, figures)
        assert figures["steady_events_per_s"] > 0, (name, figures)
        assert figures["elapsed_s"] > 0, (name, figures)
    for name in SCORED_ROWS:
        figures = report["contenders"][name]
        assert figures["latency_ms"]["p99"] > 0, (name, figures)
        assert figures["peak_rss_mb"] > 0, (name, figures)
        assert figures["cpu_s_per_1k"] > 0, (name, figures)
    # Bursts: timed from the first send, every event done (the textbook's too: uncapped).
    for name in ("floor_burst", "burst", "textbook_burst"):
        figures = report["contenders"][name]
        assert figures["timed_from"] == "first send"
        assert figures["events"] == figures["sent"] == BURST_EVENTS, (name, figures)
    assert report["contenders"]["burst"]["profiles_checked"] is True
    # The Quix Streams peer runs where it is installed, else says so.
    quix = report["contenders"].get("quix_burst")
    if quix is None:
        assert report["not_measured"]["quix_burst"] == "not installed"
        assert report["targets"]["burst_over_quix"]["verdict"] == "not measured"
    else:
        assert quix["events"] == BURST_EVENTS
    # Live rates come from the burst's.
    burst_rate = report["contenders"]["burst"]["events_per_s"]
    half = report["contenders"]["pipeline_half_rate"]["target_rate"]
    assert half == pytest.approx(burst_rate / 2, rel=0.01)
    # Backlog: timed from ready, with the stages' progress.
    pipeline = report["contenders"]["pipeline"]
    assert pipeline["timed_from"] == "ready"
    stages = pipeline["stages"]
    assert stages["first_score_s"] > 0
    assert stages["first_enriched_s"] is not None
    assert stages["first_enriched_s"] <= stages["first_score_s"]
    assert 0 <= stages["scored_share"] <= 1
    assert stages["progress"], stages
    for key in TARGETS:
        target = report["targets"][key]
        assert target["verdict"] in ("holds", "missed", "not measured"), (key, target)
        if key != "burst_over_quix":
            assert target["verdict"] != "not measured", (key, target)
            assert target["measured"] > 0, (key, target)
        assert f"{target['what']}: {target['shown']}" in done.stdout
    assert report["ratios"]["pipeline_over_floor"] > 0
    assert report["ratios"]["burst_over_textbook_burst"] > 0


def test_only_runs_the_rows_named_and_leaves_their_dependants_unmeasured(
    tmp_path: Path,
) -> None:
    done, output = run_bench(tmp_path, "--only", "floor_burst,pipeline_half_rate")
    assert done.returncode == 0, done.stderr[-2000:]
    report = orjson.loads(output.read_bytes())
    assert list(report["contenders"]) == ["floor_burst"]
    assert report["contenders"]["floor_burst"]["events"] == BURST_EVENTS
    assert report["not_measured"]["pipeline_half_rate"] == "not measured: needs the burst row"
    assert report["not_measured"]["burst"] == "not run (--only)"
    assert {target["verdict"] for target in report["targets"].values()} == {"not measured"}
    assert "burst: pipeline / floor: not measured" in done.stdout


def test_bad_flags_get_one_line_errors(tmp_path: Path) -> None:
    for flags in (
        ["--events", "5"],
        ["--workers", "4", "--partitions", "2"],
        ["--customers", "100", "--burst-customers", "200"],
        ["--only", "floor,nonsense"],
    ):
        done = subprocess.run(
            [*BENCH, *flags],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=bench_env(),
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("benchmarks: error:"), done.stderr


def test_the_wheel_ships_no_benchmark(tmp_path: Path) -> None:
    """The benchmark lives beside the product: nothing of it in the wheel or the CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.startswith("streamer/") for name in names)
    assert not [name for name in names if "bench" in name.split("/")[0]], names
    streamer = Path(sys.executable).with_name("streamer")
    help_text = subprocess.run([streamer, "--help"], capture_output=True, text=True).stdout
    assert " bench " not in help_text and " demo " in help_text
