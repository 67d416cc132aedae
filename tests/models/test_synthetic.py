"""Synthetic customers, training sets and events: determinism, contract and churn signal."""

from __future__ import annotations

import csv
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import TypeAdapter

from models.features import PLANS, is_cancel_page, validate_features
from models.synthetic import (
    EVENT_TYPES,
    PROFILE_COLUMNS,
    EventGenerator,
    generate_customers,
    generate_training_set,
    write_profiles_csv,
)
from topics.events import CustomerEvent

NOW_MS = int(time.time() * 1000)


def test_customers_are_deterministic_per_seed() -> None:
    assert generate_customers(200, seed=3) == generate_customers(200, seed=3)
    assert generate_customers(200, seed=3) != generate_customers(200, seed=4)


def test_customers_are_valid_profiles_with_plain_python_values() -> None:
    customers = generate_customers(500)
    assert [c["customer_id"] for c in customers[:3]] == ["c-0", "c-1", "c-2"]
    for customer in customers:
        assert set(customer) == set(PROFILE_COLUMNS)
        validate_features(customer)  # raises on a bad plan, contract or number
        assert type(customer["tenure_months"]) is int
        assert type(customer["monthly_spend"]) is float
        assert isinstance(customer["country"], str) and len(customer["country"]) == 2


def test_customer_mix_is_realistic() -> None:
    customers = generate_customers(5000)
    plans = Counter(c["plan"] for c in customers)
    assert plans.most_common(1)[0][0] == "standard"
    assert set(plans) == set(PLANS)

    def annual_share(rows: list[dict[str, str | int | float]]) -> float:
        return sum(r["contract"] == "annual" for r in rows) / len(rows)

    short = [c for c in customers if int(c["tenure_months"]) < 12]
    long = [c for c in customers if int(c["tenure_months"]) >= 36]
    assert annual_share(long) > annual_share(short) + 0.2


def test_training_set_is_deterministic_with_binary_labels() -> None:
    profiles, labels = generate_training_set(1000, seed=5)
    again, labels_again = generate_training_set(1000, seed=5)
    assert profiles == again
    assert np.array_equal(labels, labels_again)
    assert labels.shape == (1000,)
    assert set(np.unique(labels)) == {0, 1}
    assert 0.15 <= labels.mean() <= 0.30
    for profile in profiles[:50]:
        validate_features(profile)
        assert int(str(profile["cancel_page_views"])) <= int(str(profile["page_views"]))


def test_training_set_carries_the_churn_signal() -> None:
    profiles, labels = generate_training_set(8000, seed=11)

    def churn_rate(condition: str, test: object) -> float:
        mask = np.array([bool(test(p[condition])) for p in profiles])  # type: ignore[operator]
        return float(labels[mask].mean())

    assert churn_rate("contract", lambda v: v == "monthly") > churn_rate(
        "contract", lambda v: v == "annual"
    )
    assert churn_rate("complaints", lambda v: v >= 2) > churn_rate("complaints", lambda v: v == 0)
    assert churn_rate("cancel_page_views", lambda v: v >= 2) > churn_rate(
        "cancel_page_views", lambda v: v == 0
    )
    assert churn_rate("tenure_months", lambda v: v < 6) > churn_rate(
        "tenure_months", lambda v: v >= 48
    )
    assert churn_rate("plan", lambda v: v == "basic") > churn_rate("plan", lambda v: v == "premium")


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return EventGenerator(generate_customers(2000), seed=7).batch(40_000, NOW_MS)


def test_events_follow_the_contract(events: list[dict[str, object]]) -> None:
    adapter: TypeAdapter[object] = TypeAdapter(CustomerEvent)
    for event in events[:2000]:
        adapter.validate_python(event)  # the topics package's strict event model
    for event in events:
        assert event["type"] in EVENT_TYPES
        assert event["ts"] == NOW_MS
        expected = {"event_id", "type", "customer_id", "ts"}
        if event["type"] == "page_view":
            expected.add("page")
            assert str(event["page"]).startswith("/")
        if event["type"] == "order":
            expected.add("amount")
            amount = event["amount"]
            assert isinstance(amount, float) and amount > 0
        assert set(event) == expected


def test_event_ids_are_unique_uuid4_hex(events: list[dict[str, object]]) -> None:
    ids = [str(event["event_id"]) for event in events]
    assert len(set(ids)) == len(ids)
    for event_id in ids[:500]:
        parsed = uuid.UUID(hex=event_id)
        assert parsed.hex == event_id
        assert parsed.version == 4


def test_event_mix_is_mostly_page_views(events: list[dict[str, object]]) -> None:
    counts = Counter(event["type"] for event in events)
    assert 0.7 <= counts["page_view"] / len(events) <= 0.9
    assert set(counts) == set(EVENT_TYPES)
    pages = {event["page"] for event in events if event["type"] == "page_view"}
    assert {"/pricing", "/cancel", "/account/cancel"} <= pages


def test_events_are_deterministic_and_batch_matches_next_event() -> None:
    customers = generate_customers(100)
    one = EventGenerator(customers, seed=3)
    other = EventGenerator(customers, seed=3)
    assert one.batch(5000, NOW_MS) == [other.next_event(NOW_MS) for _ in range(5000)]
    assert EventGenerator(customers, seed=4).batch(10, NOW_MS) != one.batch(10, NOW_MS)


def test_unseeded_generators_differ() -> None:
    customers = generate_customers(10)
    first = EventGenerator(customers, seed=None).batch(5, NOW_MS)
    second = EventGenerator(customers, seed=None).batch(5, NOW_MS)
    assert [e["event_id"] for e in first] != [e["event_id"] for e in second]


def test_churn_prone_customers_complain_and_visit_cancel_pages_more() -> None:
    # Same customers and seed: the stream shares the training set's hidden propensities.
    n, seed = 3000, 13
    profiles, labels = generate_training_set(n, seed=seed)
    generator = EventGenerator(profiles, seed=seed)
    complaints = np.zeros(n)
    cancels = np.zeros(n)
    for event in generator.batch(300_000, NOW_MS):
        index = int(str(event["customer_id"])[2:])
        if event["type"] == "complaint":
            complaints[index] += 1
        elif event["type"] == "page_view" and is_cancel_page(str(event["page"])):
            cancels[index] += 1
    churned = labels == 1
    assert complaints[churned].mean() > 1.8 * complaints[~churned].mean()
    assert cancels[churned].mean() > 1.8 * cancels[~churned].mean()


def test_generation_is_fast() -> None:
    generator = EventGenerator(generate_customers(10_000), seed=1)
    started = time.perf_counter()
    generator.batch(100_000, NOW_MS)
    # >= 50k events/s with room for a slow CI machine (locally ~350k/s)
    assert time.perf_counter() - started < 2.0


def test_generator_needs_customers() -> None:
    with pytest.raises(ValueError, match="at least one customer"):
        EventGenerator([])


def test_write_profiles_csv_round_trips(tmp_path: Path) -> None:
    customers = generate_customers(20)
    path = tmp_path / "profiles.csv"
    write_profiles_csv(customers, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "customer_id,plan,contract,tenure_months,monthly_spend,country"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert rows[3] == {key: str(value) for key, value in customers[3].items()}
