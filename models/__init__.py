"""Churn models: the shared feature function, synthetic data, training and the model registry.

Submodules are imported explicitly (``from models.features import feature_row``) so the
serving hot path does not pay for importing scikit-learn when it only needs features.
"""
