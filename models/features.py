"""The one feature function shared by training and serving.

A customer profile is a Redis hash, so values arrive as ``str`` or ``bytes`` (or as numbers
when rows come from CSV, Parquet or JSON). Training (``feature_matrix``) and the streaming
scorer (``feature_row``) both go through ``feature_row``, so a model never sees features
computed differently from the ones it was trained on.

Static attributes: ``plan`` (basic|standard|premium), ``contract`` (monthly|annual),
``tenure_months`` (int >= 0), ``monthly_spend`` (float >= 0) and ``country`` (not a
feature). Counters maintained by the stream: ``page_views``, ``complaints``,
``support_calls``, ``orders`` and ``cancel_page_views`` (ints >= 0).

``feature_row`` is lenient (a stored profile must never crash the scorer: bad values fall
back to defaults); ``validate_features`` is strict (a caller of ``POST /api/predict`` is
told which field is wrong).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal, TypeVar, get_args

import numpy as np

# The profile schema. Static attributes come from profile files; counters are maintained
# by the stream. Everything else about a profile's fields derives from these.
Plan = Literal["basic", "standard", "premium"]
Contract = Literal["monthly", "annual"]
PLANS: tuple[Plan, ...] = get_args(Plan)
CONTRACTS: tuple[Contract, ...] = get_args(Contract)
DEFAULT_PLAN: Final = "standard"
DEFAULT_CONTRACT: Final = "monthly"
COUNTER_FIELDS: tuple[str, ...] = (
    "page_views",
    "complaints",
    "support_calls",
    "orders",
    "cancel_page_views",
)
INT_FIELDS: tuple[str, ...] = ("tenure_months", *COUNTER_FIELDS)
FLOAT_FIELDS: tuple[str, ...] = ("monthly_spend",)
STATIC_FEATURE_FIELDS: tuple[str, ...] = ("plan", "contract", "tenure_months", "monthly_spend")
STATIC_FIELDS: tuple[str, ...] = (*STATIC_FEATURE_FIELDS, "country")  # country: not a feature
PROFILE_COLUMNS: tuple[str, ...] = ("customer_id", *STATIC_FIELDS)  # of a profile file
# Every profile field ``feature_row`` reads.
FEATURE_INPUTS: tuple[str, ...] = (*STATIC_FEATURE_FIELDS, *COUNTER_FIELDS)

FEATURE_NAMES: tuple[str, ...] = (
    "tenure_months",
    "monthly_spend",
    "plan_basic",
    "plan_premium",
    "contract_monthly",
    *COUNTER_FIELDS,
)
# Numeric profile fields keep their type; the one-hot columns are booleans.
FeatureType = Literal["float", "int", "bool"]
FEATURE_TYPES: dict[str, FeatureType] = {
    name: "int" if name in INT_FIELDS else "float" if name in FLOAT_FIELDS else "bool"
    for name in FEATURE_NAMES
}

# Far beyond any real tenure, spend or counter; larger values are client bugs.
MAX_VALUE = 1e12

_V = TypeVar("_V")


def _str_and_bytes_keys(table: Mapping[str, _V]) -> dict[str | bytes, _V]:
    # Both key types, so the common case is a single dict lookup with no decoding.
    result: dict[str | bytes, _V] = {}
    for key, value in table.items():
        result[key] = value
        result[key.encode()] = value
    return result


_PLAN_ONE_HOT = _str_and_bytes_keys(
    {"basic": (1.0, 0.0), "standard": (0.0, 0.0), "premium": (0.0, 1.0)}
)
_CONTRACT_MONTHLY = _str_and_bytes_keys({"monthly": 1.0, "annual": 0.0})
_DEFAULT_PLAN_ONE_HOT = _PLAN_ONE_HOT[DEFAULT_PLAN]
_DEFAULT_CONTRACT_MONTHLY = _CONTRACT_MONTHLY[DEFAULT_CONTRACT]

_CANCEL_PREFIXES = ("/cancel", "/account/cancel")


class FeatureError(ValueError):
    """A feature payload failed strict validation; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _number(value: object) -> float:
    """Parse a non-negative finite number leniently; anything else counts as 0."""
    if value is None:
        return 0.0
    try:
        # float() itself parses str, bytes, int and float: the fastest path for all four.
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0.0
    # NaN fails both comparisons; negative or infinite counters are corruption, not signal.
    if 0.0 <= number <= MAX_VALUE:
        return number
    return 0.0


def _normalise_label(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value.strip().lower() if isinstance(value, str) else ""


def _plan_one_hot(value: object) -> tuple[float, float]:
    if isinstance(value, str | bytes):
        hit = _PLAN_ONE_HOT.get(value)
        if hit is not None:
            return hit
    return _PLAN_ONE_HOT.get(_normalise_label(value), _DEFAULT_PLAN_ONE_HOT)


def _contract_monthly(value: object) -> float:
    if isinstance(value, str | bytes):
        hit = _CONTRACT_MONTHLY.get(value)
        if hit is not None:
            return hit
    return _CONTRACT_MONTHLY.get(_normalise_label(value), _DEFAULT_CONTRACT_MONTHLY)


def feature_row(profile: Mapping[str, object]) -> list[float]:
    """Compute the feature vector of one profile, in ``FEATURE_NAMES`` order.

    Never raises for a mapping: missing or unparseable values take the defaults (plan
    standard, contract monthly, numbers 0).
    """
    get = profile.get
    plan_basic, plan_premium = _plan_one_hot(get("plan"))
    return [
        _number(get("tenure_months")),
        _number(get("monthly_spend")),
        plan_basic,
        plan_premium,
        _contract_monthly(get("contract")),
        _number(get("page_views")),
        _number(get("complaints")),
        _number(get("support_calls")),
        _number(get("orders")),
        _number(get("cancel_page_views")),
    ]


def feature_matrix(profiles: Sequence[Mapping[str, object]]) -> np.ndarray:
    """Compute the float64 feature matrix, shape ``(len(profiles), len(FEATURE_NAMES))``."""
    matrix = np.array([feature_row(profile) for profile in profiles], dtype=np.float64)
    return matrix.reshape(len(profiles), len(FEATURE_NAMES))


def _strict_choice(
    payload: Mapping[str, object], field: str, choices: tuple[str, ...], default: str
) -> str:
    value = payload.get(field)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise FeatureError(field, f"must be one of {', '.join(choices)}")
    return value


def _strict_number(payload: Mapping[str, object], field: str, kind: type[float]) -> float:
    """The value of a numeric field as ``kind`` (int or float); 0 when missing or null."""
    value = payload.get(field)
    if value is None:
        return kind(0)
    wanted = "an integer" if kind is int else "a number"
    # bool is an int subclass but never a count or an amount; NaN fails `>= 0`.
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise FeatureError(field, f"must be {wanted} >= 0")
    # JSON clients may send 3.0 for 3.
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise FeatureError(field, f"must be {wanted} >= 0")
    if value > MAX_VALUE:
        raise FeatureError(field, f"must be <= {MAX_VALUE:.0e}")
    return kind(value)


def validate_features(payload: Mapping[str, object]) -> dict[str, object]:
    """Strictly validate an on-demand prediction payload and return a normalised profile.

    Missing (or null) fields take the defaults; unknown keys are ignored. Raises
    ``FeatureError`` for a wrong type, a negative or non-integer count, or an unknown
    plan or contract. The result is suitable for ``feature_row``.
    """
    profile: dict[str, object] = {
        "plan": _strict_choice(payload, "plan", PLANS, DEFAULT_PLAN),
        "contract": _strict_choice(payload, "contract", CONTRACTS, DEFAULT_CONTRACT),
    }
    for field in INT_FIELDS:
        profile[field] = _strict_number(payload, field, int)
    for field in FLOAT_FIELDS:
        profile[field] = _strict_number(payload, field, float)
    return profile


def is_cancel_page(page: str) -> bool:
    """Whether a page path is a cancellation page (``/cancel``, ``/account/cancel`` and below)."""
    path = page.split("?", 1)[0].split("#", 1)[0]
    return any(path == prefix or path.startswith(prefix + "/") for prefix in _CANCEL_PREFIXES)
