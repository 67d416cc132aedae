"""Holdout metrics and training-feature distributions recorded in model metadata."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from models.metadata import CalibrationBin, FeatureDistribution, Metrics, Quantiles

CALIBRATION_BINS = 10
_QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


def calibration_table(
    labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[CalibrationBin]:
    """Reliability table over equal-width probability bins; empty bins are left out."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds scores in [edges[i], edges[i+1]); a score of exactly 1.0 joins the last bin.
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    table = []
    for i in range(bins):
        mask = index == i
        count = int(mask.sum())
        if count:
            table.append(
                CalibrationBin(
                    bin_lower=float(edges[i]),
                    bin_upper=float(edges[i + 1]),
                    mean_predicted=float(scores[mask].mean()),
                    fraction_positive=float(labels[mask].mean()),
                    count=count,
                )
            )
    return table


def holdout_metrics(labels: np.ndarray, scores: np.ndarray) -> Metrics:
    """ROC AUC, log loss, Brier score, churn rate and calibration of holdout scores."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    return Metrics(
        roc_auc=float(roc_auc_score(labels, scores)),
        log_loss=float(log_loss(labels, scores, labels=[0, 1])),
        brier=float(brier_score_loss(labels, scores)),
        positive_rate=float(labels.mean()),
        calibration=calibration_table(labels, scores),
    )


def feature_distributions(
    matrix: np.ndarray, names: tuple[str, ...]
) -> dict[str, FeatureDistribution]:
    """Mean, std, range and quantiles of each feature column, the baseline for drift checks."""
    if matrix.shape[0] == 0:
        raise ValueError("cannot summarise features of zero rows")
    quantiles = np.quantile(matrix, list(_QUANTILES.values()), axis=0)
    return {
        name: FeatureDistribution(
            mean=float(matrix[:, j].mean()),
            std=float(matrix[:, j].std()),
            min=float(matrix[:, j].min()),
            max=float(matrix[:, j].max()),
            quantiles=Quantiles(
                **{key: float(quantiles[k, j]) for k, key in enumerate(_QUANTILES)}
            ),
        )
        for j, name in enumerate(names)
    }
