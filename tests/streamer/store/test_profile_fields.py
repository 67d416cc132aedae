"""The store, the profile file and the batch scorer follow the profile schema of models.features."""

from __future__ import annotations

from typing import get_args

from models.features import (
    COUNTER_FIELDS,
    FEATURE_INPUTS,
    FLOAT_FIELDS,
    INT_FIELDS,
    PROFILE_COLUMNS,
    STATIC_FIELDS,
    Plan,
)
from streamer.store.batch_scoring import READ_FIELDS
from streamer.store.profile_csv import StaticProfile
from streamer.store.profiles import COUNTER_FIELD, typed_profile


def test_profile_file_columns_are_the_static_fields() -> None:
    assert tuple(StaticProfile.model_fields) == PROFILE_COLUMNS
    fields = StaticProfile.model_fields
    for name in STATIC_FIELDS:
        if name in INT_FIELDS:
            assert fields[name].annotation is int, name
        elif name in FLOAT_FIELDS:
            assert fields[name].annotation is float, name
    assert get_args(fields["plan"].annotation) == get_args(Plan)


def test_events_count_into_counter_fields() -> None:
    assert set(COUNTER_FIELD.values()) <= set(COUNTER_FIELDS)


def test_batch_scoring_reads_every_feature_input() -> None:
    assert set(FEATURE_INPUTS) <= set(READ_FIELDS)


def test_typed_profile_types_every_numeric_field() -> None:
    stored = {name: "3" for name in (*INT_FIELDS, *FLOAT_FIELDS)}
    stored |= {"plan": "basic", "churn_score": "0.25", "scored_at": "17", "model_version": "v2"}
    stored |= {"event_seq": "5", "scored_seq": "4"}
    typed = typed_profile(stored)
    assert (typed["event_seq"], typed["scored_seq"]) == (5, 4)
    assert all(type(typed[name]) is int for name in INT_FIELDS)
    assert all(type(typed[name]) is float for name in FLOAT_FIELDS)
    assert (typed["churn_score"], typed["scored_at"]) == (0.25, 17)
    assert (typed["plan"], typed["model_version"]) == ("basic", "v2")
    assert typed_profile({"page_views": "many"}) == {"page_views": "many"}
