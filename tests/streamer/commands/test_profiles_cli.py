"""`streamer profiles load`: bad rows reported by line number, good rows still loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from streamer.devstack import EmbeddedStack, free_port
from tests.support.cli import one_error_line, run_cli

pytestmark = pytest.mark.integration


def _env(stack: EmbeddedStack, db: int) -> dict[str, str]:
    return {"REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}/{db}"}


def test_bad_rows_are_reported_by_line_and_good_rows_loaded(
    stack: EmbeddedStack, redis_db: int, tmp_path: Path
) -> None:
    csv = tmp_path / "profiles.csv"
    csv.write_bytes(
        b"customer_id,plan,contract,tenure_months,monthly_spend,country\n"
        b"alice,basic,monthly,3,20.5,DE\n"  # line 2: good
        b"bob,gold,monthly,3,20.5,DE\n"  # line 3: unknown plan
        b"carol,basic,monthly,-4,20.5,FR\n"  # line 4: negative tenure
        b",basic,monthly,3,20.5,FR\n"  # line 5: no customer_id
        b"dave,premium,annual,12,99.0,US,extra\n"  # line 6: too many values
        b"erin,basic,monthly,3,\xff\xfe,DE\n"  # line 7: not UTF-8
        b"frank,standard,annual,40,55.25,GB\n"  # line 8: good
    )
    result = run_cli(tmp_path, "profiles", "load", str(csv), env=_env(stack, redis_db))
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == f"loaded 2 profile(s) from {csv}; 5 bad row(s) skipped"
    skipped = result.stderr.strip().splitlines()
    assert [line.split(": ", 2)[1] for line in skipped] == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
    ]
    assert "plan" in skipped[0] and "tenure_months" in skipped[1]
    assert "customer_id" in skipped[2] and "more values" in skipped[3]
    assert "UTF-8" in skipped[4]
    store = redis.Redis(port=stack.redis_port, db=redis_db, decode_responses=True)
    assert store.hgetall("profile:alice")["tenure_months"] == "3"
    assert store.hgetall("profile:frank")["plan"] == "standard"
    assert sorted(store.keys("profile:*")) == ["profile:alice", "profile:frank"]


def test_only_bad_rows_exits_non_zero(stack: EmbeddedStack, redis_db: int, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("customer_id,tenure_months\nx,many\n")
    result = run_cli(tmp_path, "profiles", "load", str(csv), env=_env(stack, redis_db))
    assert result.returncode == 2
    assert "line 2: tenure_months" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.csv", None, "cannot open"),
        ("folder", "dir", "cannot open"),
        ("no-id.csv", b"name,plan\nalice,basic\n", "header must include customer_id"),
        ("empty.csv", b"", "header must include customer_id"),
        ("binary.csv", b"\xff\xfe\x00\x01customer_id\n", "not a UTF-8 CSV file"),
    ],
)
def test_unreadable_files_give_one_line(
    stack: EmbeddedStack,
    redis_db: int,
    tmp_path: Path,
    name: str,
    content: bytes | str | None,
    expected: str,
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    result = run_cli(tmp_path, "profiles", "load", str(path), env=_env(stack, redis_db))
    assert expected in one_error_line(result)


def test_bad_arguments_give_one_line(tmp_path: Path) -> None:
    assert "Missing argument 'FILE'" in one_error_line(run_cli(tmp_path, "profiles", "load"))
    assert "No such command 'unload'" in one_error_line(run_cli(tmp_path, "profiles", "unload"))
    assert "No such option" in one_error_line(run_cli(tmp_path, "profiles", "load", "--fast"))


def test_bad_redis_url_names_the_variable_and_hides_the_password(tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("customer_id\nalice\n")
    malformed = run_cli(tmp_path, "profiles", "load", str(csv), env={"REDIS_URL": "localhost"})
    assert one_error_line(malformed).startswith("REDIS_URL")
    port = free_port()
    unreachable = run_cli(
        tmp_path,
        "profiles",
        "load",
        str(csv),
        env={"REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0"},
    )
    line = one_error_line(unreachable)
    assert line.startswith(f"REDIS_URL redis://:***@127.0.0.1:{port}/0 unreachable")
    assert "hunter2" not in unreachable.stderr + unreachable.stdout
