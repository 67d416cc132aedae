"""Faust worker, embedded dev stack and command line of the churn-prediction service."""
