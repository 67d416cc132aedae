"""HTTP routes served by every worker (Faust web): counts, profiles, scoring, health, metrics.

Reads land on any worker: per-customer counts are proxied to the worker that owns the
customer's partition, the page list is gathered from every worker's own partitions, and
profiles come from Redis, which every worker shares.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from typing import Any, cast

import aiohttp
import aiohttp.web
import numpy as np
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from yarl import URL

from models.features import FEATURE_NAMES, FeatureError, feature_row, validate_features
from streamer.store.profiles import typed_profile
from streamer.worker import metrics
from streamer.worker.activity import activity
from streamer.worker.app import app, settings
from streamer.worker.channels import enriched_events
from streamer.worker.runtime import RETRYABLE, runtime, tables_recovered
from streamer.worker.stages.counting import split_page_key
from streamer.worker.tables import customer_page_views, page_views_total, page_views_windowed
from streamer.worker.tally import count_of
from topics.events import utc_now_ms

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
PEER_TIMEOUT_S = 3.0


def _json(view: View, value: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(value), content_type="application/json", status=status)


def _error(view: View, status: int, message: str, **extra: Any) -> Response:
    return _json(view, {"error": message, **extra}, status)


def _owned_partitions(changelog_topic: str) -> set[int] | None:
    """Partitions of a changelog this worker owns actively; None before any assignment."""
    actives = {
        tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog_topic
    }
    return actives or None


def _is_me(url: str | URL) -> bool:
    mine, other = URL(str(app.conf.canonical_url)), URL(str(url))
    return (mine.host, mine.port) == (other.host, other.port)


async def _fetch_json(url: URL) -> Any:
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
    async with app.http_client.get(url, timeout=timeout) as response:
        response.raise_for_status()
        return orjson.loads(await response.read())


def local_page_counts() -> dict[str, dict[str, int]]:
    """Per-page totals and current-window counts of the partitions this worker owns."""
    owned = _owned_partitions(page_views_total.changelog_topic.get_topic_name())
    pages: dict[str, dict[str, int]] = {}
    for key, value in list(page_views_total.items()):
        partition, page = split_page_key(key)
        if owned is not None and partition not in owned:
            continue  # a standby copy: its active owner reports it
        counts = pages.setdefault(page, {"total": 0, "current_window": 0})
        counts["total"] += count_of(value)
        counts["current_window"] += count_of(page_views_windowed[key].now())
    return pages


@app.page("/api/page-views")
async def page_views(self: View, request: Request) -> Response:
    """Page-view counts per page, total and in the current window, from every worker."""
    pages = local_page_counts()
    peers_missing: list[str] = []
    if request.query.get("scope") != "local":
        peers = [url for url in app.router.tables_metadata() if not _is_me(url)]
        answers = await asyncio.gather(
            *(_fetch_json(URL(url) / "api/page-views" % {"scope": "local"}) for url in peers),
            return_exceptions=True,
        )
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException):
                peers_missing.append(str(url))
                continue
            for item in answer["pages"]:
                counts = pages.setdefault(item["page"], {"total": 0, "current_window": 0})
                counts["total"] += item["total"]
                counts["current_window"] += item["current_window"]
    ranked = sorted(pages.items(), key=lambda item: (-item[1]["total"], item[0]))
    listed = [{"page": page, **counts} for page, counts in ranked]
    return _json(
        self,
        {
            "window_seconds": settings.worker.page_window,
            "pages": listed,
            "generated_at": utc_now_ms(),
            "complete": not peers_missing,
            "unreachable_workers": peers_missing,
        },
    )


@app.page("/api/customers/{customer_id}/page-views")
async def customer_views(self: View, request: Request, customer_id: str) -> Response:
    """Page views of one customer, answered by (or fetched from) the owning worker."""
    owner = _customer_owner(customer_id)
    if owner is not None and not _is_me(owner) and request.query.get("scope") != "local":
        try:
            answer = await _fetch_json(
                URL(owner) / "api/customers" / customer_id / "page-views" % {"scope": "local"}
            )
            return _json(self, answer)
        except Exception as exc:
            return _error(self, 503, f"owner worker {owner} unreachable: {exc}")
    return _json(
        self,
        {"customer_id": customer_id, "total": count_of(customer_page_views.get(customer_id, 0))},
    )


def _customer_owner(customer_id: str) -> str | None:
    changelog = customer_page_views.changelog_topic.get_topic_name()
    try:
        tp = app.producer.key_partition(enriched_events.get_topic_name(), customer_id.encode())
    except Exception:
        return None
    for url, topics in app.router.tables_metadata().items():
        if tp.partition in topics.get(changelog, ()):
            return str(url)
    return None


@app.page("/api/profiles/{customer_id}")
async def profile(self: View, request: Request, customer_id: str) -> Response:
    """The stored profile, numbers as numbers; 404 when the customer has none."""
    try:
        stored = await runtime.profiles.get_profile(customer_id)
    except RETRYABLE as exc:
        return _error(self, 503, f"profile store unavailable: {exc}")
    if stored is None:
        return _error(self, 404, f"no profile for customer {customer_id!r}")
    return _json(self, {"customer_id": customer_id, **typed_profile(stored)})


@app.page("/api/predict")
class Predict(View):
    """On-demand scoring of a profile-like JSON body with the serving model."""

    async def post(self, request: Request) -> Response:
        http_request = cast(aiohttp.web.Request, request)
        length = http_request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return _error(self, 413, f"body larger than {MAX_BODY_BYTES} bytes")
        body = await http_request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _error(self, 413, f"body larger than {MAX_BODY_BYTES} bytes")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(self, 422, f"body is not valid JSON: {exc}")
        if not isinstance(payload, dict):
            return _error(self, 422, "body must be a JSON object")
        try:
            features = validate_features(payload)
        except FeatureError as exc:
            return _error(self, 422, str(exc), field=exc.field)
        model = runtime.models.current
        if model is None:
            return _error(self, 503, "no model loaded yet")
        row = feature_row(features)
        score = float(model.score(np.asarray([row], dtype=np.float64))[0])
        return _json(
            self,
            {
                "churn_score": score,
                "model_version": model.version,
                "features": dict(zip(FEATURE_NAMES, row, strict=True)),
            },
        )


@app.page("/api/summary")
async def summary(self: View, request: Request) -> Response:
    """What the dashboard shows: model, counters and this worker's recent scores."""
    model = runtime.models.current

    def total(stage: str, outcome: str) -> int:
        labels = {"stage": stage, "outcome": outcome}
        return int(REGISTRY.get_sample_value("streamer_events_total", labels) or 0)

    dead = sum(
        int(REGISTRY.get_sample_value("streamer_dead_letters_total", {"stage": stage}) or 0)
        for stage in ("validation", "enrichment", "counting", "prediction")
    )
    return _json(
        self,
        {
            "model_version": model.version if model else None,
            "ready": runtime.ready,
            "counters": {
                "events_processed": total("enrichment", "enriched")
                + total("enrichment", "duplicate"),
                "dead_letters": dead,
                "predictions": total("prediction", "scored"),
                "duplicates": total("enrichment", "duplicate"),
            },
            "recent_predictions": activity.recent_predictions(),
            "top_risk": activity.top_risk(),
        },
    )


@app.page("/health")
async def health(self: View, request: Request) -> Response:
    """200 while the process lives."""
    return _json(self, {"status": "ok"})


@app.page("/ready")
async def ready(self: View, request: Request) -> Response:
    """200 once tables are recovered, a model is loaded and Redis answers; else 503."""
    model = runtime.models.current
    state = {
        "tables_recovered": tables_recovered(),
        "model_version": model.version if model else None,
        "profile_store": runtime.store_healthy,
    }
    return _json(self, {"ready": runtime.ready, **state}, 200 if runtime.ready else 503)


@app.page("/metrics")
async def prometheus_metrics(self: View, request: Request) -> Response:
    """Prometheus text format."""
    metrics.READY.set(1 if runtime.ready else 0)
    return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/dashboard")
async def dashboard(self: View, request: Request) -> Response:
    """The dashboard page."""
    page = resources.files("streamer.worker").joinpath("static/dashboard.html").read_bytes()
    return self.bytes(page, content_type="text/html")
