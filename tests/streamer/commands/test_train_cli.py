"""`streamer train`: output, alias behaviour and one-line errors for bad data."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from models.registry import ModelRegistry
from streamer.commands.models import models
from streamer.commands.train import train


def _run(registry: Path, *args: str) -> Result:
    env = {"MODEL_REGISTRY": str(registry), "MODEL_AUTHOR": "ci"}
    return CliRunner().invoke(train, list(args), env=env)


def _single_error_line(result: Result) -> str:
    """The error, checked to be one line and not an escaped exception."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a ClickException, not a crash
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    return errors[0]


def test_train_registers_and_reports(tmp_path: Path) -> None:
    result = _run(tmp_path, "--customers", "1500", "--seed", "3", "--author", "alice")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"registered v1 in {tmp_path} (HistGradientBoostingClassifier")
    assert "roc_auc=" in lines[1] and "log_loss=" in lines[1] and "brier=" in lines[1]
    assert lines[2] == "serving: latest version v1 (no champion alias set)"
    registry = ModelRegistry(tmp_path)
    assert registry.metadata("v1").author == "alice"
    assert registry.metadata("v1").training_data.rows == 1500
    assert registry.aliases() == {}  # training never moves aliases


def test_train_keeps_the_champion(tmp_path: Path) -> None:
    assert _run(tmp_path, "--customers", "1000").exit_code == 0
    env = {"MODEL_REGISTRY": str(tmp_path)}
    assert CliRunner().invoke(models, ["promote", "v1"], env=env).exit_code == 0
    result = _run(tmp_path, "--customers", "1000", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "serving: champion v1 (promote with: streamer models promote v2)" in result.stdout
    registry = ModelRegistry(tmp_path)
    assert registry.metadata("v2").author == "ci"  # from $MODEL_AUTHOR
    assert registry.aliases() == {"champion": "v1"}


def test_bad_data_row_is_one_line_with_the_line_number(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    header = (
        "plan,contract,tenure_months,monthly_spend,page_views,complaints,"
        "support_calls,orders,cancel_page_views,churned"
    )
    rows = ["basic,monthly,3,19.0,10,0,1,2,0,1", "premium,annual,40,80.5,22,-1,0,5,0,0"]
    data.write_text("\n".join([header, *rows]) + "\n")
    result = _run(tmp_path / "registry", "--data", str(data))
    assert _single_error_line(result) == (
        f"Error: {data}: line 3: column 'complaints': must be an integer >= 0"
    )
    assert not (tmp_path / "registry" / "versions").exists()


def test_missing_data_file_is_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, "--data", str(tmp_path / "nope.parquet"))
    assert _single_error_line(result) == f"Error: {tmp_path / 'nope.parquet'}: no such file"


def test_too_few_customers_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(tmp_path, "--customers", "10")
    assert result.exit_code == 2
    assert "--customers" in result.output
    assert "Traceback" not in result.output


def test_search_reports_the_best_configuration_and_registers_it(tmp_path: Path) -> None:
    result = _run(tmp_path, "--search", "--trials", "3", "--customers", "1000", "--seed", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("search finished: 3 trials in ")
    assert lines[1].startswith("best configuration (trial ")
    assert "learning_rate=" in lines[1] and "validation log_loss=" in lines[1]
    assert lines[2].startswith(f"registered v1 in {tmp_path}")
    meta = ModelRegistry(tmp_path).metadata("v1")
    assert meta.search is not None and len(meta.search.trials) == 3


def test_search_time_budget_says_it_stopped(tmp_path: Path) -> None:
    result = _run(
        tmp_path, "--search", "--time-budget", "0.000001", "--trials", "50", "--customers", "800"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(
        "search stopped: time budget of 1e-06 s reached after 1 of 50 trials"
    )
    assert ModelRegistry(tmp_path).versions() == ["v1"]


def test_search_options_need_search(tmp_path: Path) -> None:
    result = _run(tmp_path, "--trials", "3")
    assert result.exit_code == 2
    assert "--trials and --time-budget need --search" in result.output
    assert ModelRegistry(tmp_path).versions() == []
    result = _run(tmp_path, "--search", "--time-budget", "0")
    assert result.exit_code == 2 and "Invalid value for '--time-budget'" in result.output
