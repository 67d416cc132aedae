"""Prometheus metrics: reliability (dead letters, retries, refusals), speed and score quality."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "streamer_events_total",
    "Events handled, by stage and outcome",
    ["stage", "outcome"],
)
DEAD_LETTERS = Counter(
    "streamer_dead_letters_total", "Messages sent to the dead-letter topic", ["stage"]
)
BATCH_SECONDS = Histogram(
    "streamer_batch_seconds",
    "Time to process one micro-batch, by stage",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = Histogram(
    "streamer_batch_size",
    "Events per micro-batch, by stage",
    ["stage"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
END_TO_END_SECONDS = Histogram(
    "streamer_end_to_end_seconds",
    "From event timestamp to churn score written",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CHURN_SCORE = Histogram(
    "streamer_churn_score",
    "Distribution of churn scores served, by model version",
    ["model_version"],
    buckets=tuple(i / 10 for i in range(1, 11)),
)
STORE_RETRIES = Counter(
    "streamer_store_retries_total", "Profile store calls retried after a connection error"
)
MODEL_LOADS = Counter(
    "streamer_model_loads_total", "Model versions taken into service", ["version"]
)
MODEL_REFUSALS = Counter(
    "streamer_model_refusals_total", "Model versions refused at load", ["version"]
)
MODEL_SERVING = Gauge(
    "streamer_model_serving", "1 for the model version currently serving", ["version"]
)
READY = Gauge("streamer_ready", "1 when tables are recovered, a model is loaded and Redis is up")
MODEL_CHALLENGER = Gauge(
    "streamer_model_challenger", "1 for the model version scoring as challenger", ["version"]
)
PREDICTIONS_BY_ROLE = Counter(
    "streamer_predictions_total", "Prediction records emitted, by model role", ["role"]
)
