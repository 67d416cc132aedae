"""The benchmark (`python -m benchmarks`) end to end with tiny sizes: every contender
measured, JSON written.

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
        *BENCH,
        "--broker",
        "auto",
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
    # The repository's jar cache, not one in tmp_path (the command runs there): Apache
    # Kafka's jars are fetched once, not per test.
    cache = os.environ.get(CACHE_VARIABLE) or str(ROOT / ".streamer" / "kafka")
    env = bench_env(**{CACHE_VARIABLE: cache})
    kind, _ = choose_broker("auto", Path(cache))
    expected = f"Apache Kafka {kafka_version()}" if kind == "kafka" else BROKER_NAMES[kind]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pipeline / floor" in done.stdout
    assert f"broker: {expected} (" in done.stdout
    report = orjson.loads(output.read_bytes())
    assert report["broker"] == expected
    assert report["broker_kind"] == kind
    assert report["config"]["broker"] == "auto"
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
