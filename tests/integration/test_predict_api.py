"""`POST /api/predict` on a running worker: the score, 422 naming the field, 413 for big bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from models.features import FEATURE_NAMES, feature_row, validate_features
from models.registry import ModelRegistry
from streamer.devstack import EmbeddedStack
from tests.support.services import Worker, http, new_worker, worker_env

pytestmark = pytest.mark.integration

PROFILE = {
    "plan": "basic",
    "contract": "monthly",
    "tenure_months": 3,
    "monthly_spend": 20.5,
    "complaints": 2,
    "cancel_page_views": 1,
    "country": "DE",  # not a feature: ignored
}


@pytest.fixture(scope="module")
def worker(
    stack: EmbeddedStack, trained_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("predict")
    env = worker_env(
        stack,
        prefix="predict-api-",
        redis_db=0,
        registry=trained_registry,
        data_dir=tmp / "data",
    )
    running = new_worker(env, tmp).start()
    yield running
    running.stop()


def _predict(worker: Worker, body: bytes) -> tuple[int, dict[str, object]]:
    status, answer = http("POST", f"{worker.base_url}/api/predict", body)
    assert isinstance(answer, dict), answer
    return status, answer


def test_predict_scores_with_the_champion(worker: Worker, trained_registry: Path) -> None:
    status, body = _predict(worker, orjson.dumps(PROFILE))
    assert status == 200, body
    model = ModelRegistry(trained_registry).load("v1")
    expected = float(model.score([feature_row(validate_features(PROFILE))])[0])
    assert body["model_version"] == "v1"
    assert body["churn_score"] == pytest.approx(expected, abs=1e-12)
    assert list(body["features"]) == list(FEATURE_NAMES)  # type: ignore[call-overload]
    # Missing fields take the defaults, like the stream's scorer.
    status, body = _predict(worker, b"{}")
    assert status == 200 and 0.0 <= float(body["churn_score"]) <= 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"plan": "gold"}, "plan", "must be one of basic, standard, premium"),
        ({"complaints": -1}, "complaints", "must be an integer >= 0"),
        ({"tenure_months": 2.5}, "tenure_months", "must be an integer >= 0"),
        ({"monthly_spend": "12"}, "monthly_spend", "must be a number >= 0"),
        ({"page_views": True}, "page_views", "must be an integer >= 0"),
    ],
)
def test_bad_fields_are_422_naming_the_field(
    worker: Worker, payload: dict[str, object], field: str, message: str
) -> None:
    status, body = _predict(worker, orjson.dumps({**PROFILE, **payload}))
    assert status == 422
    assert body["field"] == field
    assert body["error"] == f"{field}: {message}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{not json", "body is not valid JSON"), (b"[1, 2]", "body must be a JSON object")],
)
def test_bodies_that_are_not_objects_are_422(worker: Worker, raw: bytes, message: str) -> None:
    status, body = _predict(worker, raw)
    assert status == 422 and str(body["error"]).startswith(message)


def test_oversized_body_is_413(worker: Worker) -> None:
    big = orjson.dumps({**PROFILE, "padding": "x" * (64 * 1024)})
    status, body = _predict(worker, big)
    assert status == 413
    assert body["error"] == "body larger than 65536 bytes"
    # Just under the limit is still scored.
    fits = orjson.dumps({**PROFILE, "padding": "x" * (60 * 1024)})
    assert _predict(worker, fits)[0] == 200
