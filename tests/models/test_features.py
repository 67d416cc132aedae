"""The shared feature function: defaults, parsing, order, strict validation, cancel pages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.features import (
    FEATURE_NAMES,
    FEATURE_TYPES,
    FLOAT_FIELDS,
    INT_FIELDS,
    FeatureError,
    feature_matrix,
    feature_row,
    is_cancel_page,
    validate_features,
)

FULL_PROFILE = {
    "plan": "basic",
    "contract": "annual",
    "tenure_months": 14,
    "monthly_spend": 21.5,
    "page_views": 31,
    "complaints": 2,
    "support_calls": 3,
    "orders": 5,
    "cancel_page_views": 1,
    "country": "NL",
}
FULL_ROW = [14.0, 21.5, 1.0, 0.0, 0.0, 31.0, 2.0, 3.0, 5.0, 1.0]
DEFAULT_ROW = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_each_numeric_field_lands_in_the_column_of_its_name() -> None:
    for field in (*INT_FIELDS, *FLOAT_FIELDS):
        named = dict(zip(FEATURE_NAMES, feature_row({field: 7}), strict=True))
        assert named[field] == 7.0
        assert named == {**dict(zip(FEATURE_NAMES, DEFAULT_ROW, strict=True)), field: 7.0}


def test_feature_types_are_what_validation_produces() -> None:
    profile = validate_features(FULL_PROFILE)
    row = dict(zip(FEATURE_NAMES, feature_row(profile), strict=True))
    for name, kind in FEATURE_TYPES.items():
        if name in profile:
            assert type(profile[name]).__name__ == kind, name
        else:  # a one-hot column of a categorical field
            assert kind == "bool" and row[name] in (0.0, 1.0), name
    assert set(FEATURE_TYPES.values()) == {"int", "float", "bool"}


def test_row_follows_feature_names_order() -> None:
    row = feature_row(FULL_PROFILE)
    assert row == FULL_ROW
    assert dict(zip(FEATURE_NAMES, row, strict=True))["support_calls"] == 3.0


def test_empty_profile_takes_defaults() -> None:
    # plan standard (neither one-hot column), contract monthly, numbers 0
    assert feature_row({}) == DEFAULT_ROW


def test_redis_bytes_and_str_values_parse_like_numbers() -> None:
    as_str = {key: str(value) for key, value in FULL_PROFILE.items()}
    as_bytes = {key: str(value).encode() for key, value in FULL_PROFILE.items()}
    assert feature_row(as_str) == FULL_ROW
    assert feature_row(as_bytes) == FULL_ROW


@pytest.mark.parametrize(
    ("plan", "contract", "expected"),
    [
        ("premium", "monthly", (0.0, 1.0, 1.0)),
        (b"premium", b"annual", (0.0, 1.0, 0.0)),
        ("standard", "annual", (0.0, 0.0, 0.0)),
        (" Basic ", "ANNUAL", (1.0, 0.0, 0.0)),
        ("gold", "weekly", (0.0, 0.0, 1.0)),
    ],
)
def test_categoricals_one_hot(plan: object, contract: object, expected: tuple[float, ...]) -> None:
    row = feature_row({"plan": plan, "contract": contract})
    assert tuple(row[2:5]) == expected


def test_unparseable_values_fall_back_to_defaults() -> None:
    garbage: dict[str, object] = {
        "plan": ["basic"],
        "contract": None,
        "tenure_months": "twelve",
        "monthly_spend": b"\xff\xfe",
        "page_views": "-3",
        "complaints": "nan",
        "support_calls": float("inf"),
        "orders": {"n": 1},
        "cancel_page_views": 10**400,
    }
    assert feature_row(garbage) == DEFAULT_ROW


def test_feature_matrix_shape_and_dtype() -> None:
    matrix = feature_matrix([FULL_PROFILE, {}])
    assert matrix.dtype == np.float64
    assert matrix.shape == (2, len(FEATURE_NAMES))
    assert matrix[0].tolist() == FULL_ROW
    assert matrix[1].tolist() == DEFAULT_ROW
    assert feature_matrix([]).shape == (0, len(FEATURE_NAMES))


def test_validate_features_defaults_and_ignores_unknown_keys() -> None:
    profile = validate_features({"complaints": 2, "favourite_colour": "blue"})
    assert profile == {
        "plan": "standard",
        "contract": "monthly",
        "tenure_months": 0,
        "page_views": 0,
        "complaints": 2,
        "support_calls": 0,
        "orders": 0,
        "cancel_page_views": 0,
        "monthly_spend": 0.0,
    }


def test_validate_features_feeds_feature_row() -> None:
    payload = {**FULL_PROFILE, "tenure_months": 14.0}  # JSON clients may send 14.0
    profile = validate_features(payload)
    assert profile["tenure_months"] == 14
    assert isinstance(profile["tenure_months"], int)
    assert feature_row(profile) == FULL_ROW


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("monthly_spend", -1, "monthly_spend: must be a number >= 0"),
        ("monthly_spend", "12.5", "monthly_spend: must be a number >= 0"),
        ("monthly_spend", True, "monthly_spend: must be a number >= 0"),
        ("monthly_spend", math.nan, "monthly_spend: must be a number >= 0"),
        ("monthly_spend", math.inf, "monthly_spend: must be <= 1e+12"),
        ("tenure_months", math.inf, "tenure_months: must be an integer >= 0"),
        ("support_calls", 1e13, "support_calls: must be <= 1e+12"),
        ("tenure_months", 2.5, "tenure_months: must be an integer >= 0"),
        ("complaints", -1, "complaints: must be an integer >= 0"),
        ("page_views", "3", "page_views: must be an integer >= 0"),
        ("orders", False, "orders: must be an integer >= 0"),
        ("cancel_page_views", 10**13, "cancel_page_views: must be <= 1e+12"),
        ("plan", "gold", "plan: must be one of basic, standard, premium"),
        ("plan", b"basic", "plan: must be one of basic, standard, premium"),
        ("contract", 12, "contract: must be one of monthly, annual"),
    ],
)
def test_validate_features_names_the_bad_field(field: str, value: object, message: str) -> None:
    with pytest.raises(FeatureError) as caught:
        validate_features({**FULL_PROFILE, field: value})
    assert caught.value.field == field
    assert str(caught.value) == message
    assert caught.value.message == message.split(": ", 1)[1]


@pytest.mark.parametrize(
    "page",
    [
        "/cancel",
        "/cancel/",
        "/cancel/confirm",
        "/account/cancel",
        "/account/cancel/why",
        "/cancel?x=1",
    ],
)
def test_cancel_pages(page: str) -> None:
    assert is_cancel_page(page)


@pytest.mark.parametrize(
    "page",
    [
        "/cancellation",
        "/account",
        "/account/cancelled",
        "/support/cancel",
        "/pricing",
        "cancel",
        "",
    ],
)
def test_not_cancel_pages(page: str) -> None:
    assert not is_cancel_page(page)
