"""Synthetic customers, training sets and live events that share one churn signal.

Every customer has a latent propensity to churn: a static part (monthly contract, basic
plan and short tenure raise it; annual contract, premium plan and long tenure lower it)
plus a hidden frustration drawn per customer. Frustration drives how often a customer
complains, calls support and visits cancel pages, and damps how often they order. The
training set draws event counters from those rates and a churn label from a logistic
function of the static part and the counters; ``EventGenerator`` draws live events from
the very same rates, so churn-prone customers visibly score higher in the demo.

Everything is deterministic for a seed (numpy ``Generator``s only, event ids included).
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.features import FEATURE_NAMES, PLANS, PROFILE_COLUMNS, feature_matrix

EVENT_TYPES: tuple[str, ...] = ("page_view", "complaint", "support_call", "order")

_PLAN_MIX = (0.3, 0.5, 0.2)  # basic, standard, premium
_PLAN_PRICE = np.array([19.0, 39.0, 79.0])
_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "CA", "AU")
_COUNTRY_MIX = (0.34, 0.14, 0.12, 0.09, 0.06, 0.06, 0.05, 0.04, 0.06, 0.04)
_PAGES = (
    "/home",
    "/pricing",
    "/docs",
    "/blog",
    "/account",
    "/support",
    "/features",
    "/account/billing",
    "/integrations",
)
_PAGE_MIX = (0.25, 0.12, 0.15, 0.10, 0.12, 0.08, 0.08, 0.05, 0.05)
_CANCEL_PAGES = ("/cancel", "/account/cancel", "/cancel/confirm")
_CANCEL_PAGE_MIX = (0.5, 0.35, 0.15)

# Expected events per customer over one observation period (about a quarter), before the
# per-customer engagement and frustration multipliers; page views end up ~80 % of events.
_BASE_PAGE_VIEWS = 24.0
_BASE_COMPLAINTS = 0.6
_BASE_SUPPORT_CALLS = 1.0
_BASE_ORDERS = 4.0
_BASE_CANCEL_PAGE_VIEWS = 0.3

# Churn log-odds: intercept tuned for a ~20 % churn rate on generate_customers' mix.
_CHURN_INTERCEPT = -1.6
_CHURN_WEIGHTS = {
    "contract_monthly": 0.9,
    "plan_basic": 0.45,
    "plan_premium": -0.3,
    "complaints": 0.35,
    "support_calls": 0.15,
    "cancel_page_views": 0.6,
    "orders": -0.12,
}
_CHURN_TENURE_WEIGHT = -0.45  # per log1p(month): the first year matters most
_CHURN_HIDDEN_WEIGHT = 0.4  # frustration not visible in the counters

# One drawn event before its timestamp: event_id, type, customer_id, page, amount.
_Drawn = tuple[str, str, str, str | None, float | None]

_COL = {name: index for index, name in enumerate(FEATURE_NAMES)}
_CHUNK = 4096


@dataclass(frozen=True)
class _Behaviour:
    """Per-customer latent state and expected event counts per observation period."""

    frustration: np.ndarray  # (n,) hidden, standard normal
    rates: np.ndarray  # (n, 4) in EVENT_TYPES order
    cancel_rate: np.ndarray  # (n,) cancel-page views, a subset of page views


def _behaviour(static: np.ndarray, rng: np.random.Generator) -> _Behaviour:
    """Derive event rates from static features (a feature matrix) and random latent traits."""
    n = int(static.shape[0])
    frustration = rng.standard_normal(n)
    engagement = rng.lognormal(0.0, 0.5, n)
    monthly = static[:, _COL["contract_monthly"]]
    premium = static[:, _COL["plan_premium"]]
    rates = np.column_stack(
        [
            _BASE_PAGE_VIEWS * engagement,
            _BASE_COMPLAINTS * np.exp(0.9 * frustration),
            _BASE_SUPPORT_CALLS * np.exp(0.6 * frustration),
            _BASE_ORDERS * engagement * np.exp(-0.35 * frustration) * (1.0 + 0.3 * premium),
        ]
    )
    cancel_rate = _BASE_CANCEL_PAGE_VIEWS * np.exp(1.1 * frustration + 0.4 * monthly)
    # A cancel-page view is a page view: never let it exceed half of them.
    cancel_rate = np.minimum(cancel_rate, 0.5 * rates[:, 0])
    return _Behaviour(frustration=frustration, rates=rates, cancel_rate=cancel_rate)


def churn_logit(features: np.ndarray, frustration: np.ndarray) -> np.ndarray:
    """The latent churn log-odds of feature rows given each customer's hidden frustration."""
    logit = np.full(features.shape[0], _CHURN_INTERCEPT)
    for name, weight in _CHURN_WEIGHTS.items():
        logit += weight * features[:, _COL[name]]
    logit += _CHURN_TENURE_WEIGHT * np.log1p(features[:, _COL["tenure_months"]])
    return logit + _CHURN_HIDDEN_WEIGHT * frustration


# Independent child streams of one seed. The behaviour stream is shared by the training set
# and the event generator, so the same customers get the same hidden frustration in both.
_BEHAVIOUR_STREAM, _EVENTS_STREAM, _OUTCOME_STREAM = 0, 1, 2


def _child_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


def generate_customers(n: int, seed: int = 7) -> list[dict[str, str | int | float]]:
    """Generate ``n`` static customer profiles with ids ``c-0`` .. ``c-{n-1}``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    plan_index = rng.choice(len(PLANS), size=n, p=_PLAN_MIX)
    tenure = np.minimum(rng.geometric(1 / 22, size=n) - 1, 120)
    # Customers who stay tend to move to annual billing.
    p_annual = 0.1 + 0.6 * (1.0 - np.exp(-tenure / 30.0))
    annual = rng.random(n) < p_annual
    spend = np.round(_PLAN_PRICE[plan_index] * rng.lognormal(0.0, 0.25, n), 2)
    country = rng.choice(len(_COUNTRIES), size=n, p=_COUNTRY_MIX)
    return [
        {
            "customer_id": f"c-{i}",
            "plan": PLANS[p],
            "contract": "annual" if a else "monthly",
            "tenure_months": t,
            "monthly_spend": s,
            "country": _COUNTRIES[c],
        }
        for i, (p, a, t, s, c) in enumerate(
            zip(
                plan_index.tolist(),
                annual.tolist(),
                tenure.tolist(),
                spend.tolist(),
                country.tolist(),
                strict=True,
            )
        )
    ]


def generate_training_set(n: int, seed: int = 7) -> tuple[list[dict[str, object]], np.ndarray]:
    """Generate ``n`` profiles with event counters and their 0/1 churn labels (int64)."""
    customers = generate_customers(n, seed)
    static = feature_matrix(customers)
    behaviour = _behaviour(static, _child_rng(seed, _BEHAVIOUR_STREAM))
    rng = _child_rng(seed, _OUTCOME_STREAM)
    counts = rng.poisson(behaviour.rates)
    cancel_views = np.minimum(rng.poisson(behaviour.cancel_rate), counts[:, 0])
    profiles: list[dict[str, object]] = []
    for customer, (views, complaints, calls, orders), cancels in zip(
        customers, counts.tolist(), cancel_views.tolist(), strict=True
    ):
        profiles.append(
            {
                **customer,
                "page_views": views,
                "complaints": complaints,
                "support_calls": calls,
                "orders": orders,
                "cancel_page_views": cancels,
            }
        )
    features = feature_matrix(profiles)
    probability = 1.0 / (1.0 + np.exp(-churn_logit(features, behaviour.frustration)))
    labels = (rng.random(n) < probability).astype(np.int64)
    return profiles, labels


def _uuid4_hex(rng: np.random.Generator, n: int) -> list[str]:
    """Random version-4 UUIDs (32 hex chars) from the generator's bits, reproducible."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventGenerator:
    """Draws raw customer events whose mix follows each customer's latent propensity.

    ``next_event`` and ``batch`` read from one internal stream, so for a seed
    ``batch(n, t)`` equals ``[next_event(t) for _ in range(n)]``. Draws are vectorised in
    chunks, which keeps generation well above 100k events/s. ``seed=None`` uses fresh
    entropy (distinct event ids across runs).
    """

    def __init__(self, customers: Sequence[Mapping[str, object]], seed: int | None = 7) -> None:
        if not customers:
            raise ValueError("EventGenerator needs at least one customer")
        if seed is None:
            seed = secrets.randbits(64)
        self._customer_ids = [
            _text(c.get("customer_id", f"c-{i}")) for i, c in enumerate(customers)
        ]
        static = feature_matrix(customers)
        behaviour = _behaviour(static, _child_rng(seed, _BEHAVIOUR_STREAM))
        rates = behaviour.rates
        total = rates.sum(axis=1)
        self._activity_cdf = np.cumsum(total) / total.sum()
        self._type_cdf = np.cumsum(rates, axis=1) / total[:, None]
        self._cancel_share = behaviour.cancel_rate / rates[:, 0]
        spend = static[:, _COL["monthly_spend"]]
        self._order_mean = 0.5 * spend + 10.0
        self._page_cdf = np.cumsum(_PAGE_MIX) / sum(_PAGE_MIX)
        self._cancel_page_cdf = np.cumsum(_CANCEL_PAGE_MIX) / sum(_CANCEL_PAGE_MIX)
        self._rng = _child_rng(seed, _EVENTS_STREAM)
        self._buffer: list[_Drawn] = []
        self._cursor = 0

    def _draw_chunk(self, n: int) -> list[_Drawn]:
        rng = self._rng
        last = len(self._customer_ids) - 1
        who = np.minimum(np.searchsorted(self._activity_cdf, rng.random(n), side="right"), last)
        kind = (rng.random(n)[:, None] >= self._type_cdf[who]).sum(axis=1)
        kind = np.minimum(kind, len(EVENT_TYPES) - 1)  # float rounding at the top of the cdf
        cancel = rng.random(n) < self._cancel_share[who]
        normal_page = np.searchsorted(self._page_cdf, rng.random(n), side="right")
        cancel_page = np.searchsorted(self._cancel_page_cdf, rng.random(n), side="right")
        amount = np.round(self._order_mean[who] * rng.lognormal(0.0, 0.5, n), 2)
        ids = _uuid4_hex(rng, n)
        pages_all = [
            _CANCEL_PAGES[min(c, len(_CANCEL_PAGES) - 1)]
            if is_cancel
            else _PAGES[min(p, len(_PAGES) - 1)]
            for is_cancel, p, c in zip(
                cancel.tolist(), normal_page.tolist(), cancel_page.tolist(), strict=True
            )
        ]
        customer_ids = self._customer_ids
        return [
            (
                event_id,
                EVENT_TYPES[k],
                customer_ids[w],
                page if k == 0 else None,
                value if k == 3 else None,
            )
            for event_id, k, w, page, value in zip(
                ids, kind.tolist(), who.tolist(), pages_all, amount.tolist(), strict=True
            )
        ]

    def _take(self, n: int) -> list[_Drawn]:
        taken: list[_Drawn] = []
        while len(taken) < n:
            if self._cursor >= len(self._buffer):
                self._buffer = self._draw_chunk(_CHUNK)
                self._cursor = 0
            end = min(len(self._buffer), self._cursor + n - len(taken))
            taken.extend(self._buffer[self._cursor : end])
            self._cursor = end
        return taken

    def batch(self, n: int, now_ms: int) -> list[dict[str, object]]:
        """Draw ``n`` events, all stamped ``now_ms`` (epoch milliseconds)."""
        events: list[dict[str, object]] = []
        for event_id, kind, customer_id, page, amount in self._take(n):
            event: dict[str, object] = {
                "event_id": event_id,
                "type": kind,
                "customer_id": customer_id,
                "ts": now_ms,
            }
            if page is not None:
                event["page"] = page
            elif amount is not None:
                event["amount"] = amount
            events.append(event)
        return events

    def next_event(self, now_ms: int) -> dict[str, object]:
        """Draw one event stamped ``now_ms`` (epoch milliseconds)."""
        return self.batch(1, now_ms)[0]


def write_profiles_csv(customers: Sequence[Mapping[str, object]], path: Path) -> None:
    """Write static profiles as CSV with the header ``customer_id,plan,...,country``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=PROFILE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for customer in customers:
            writer.writerow(
                {column: _text_or_empty(customer.get(column)) for column in PROFILE_COLUMNS}
            )


def _text_or_empty(value: object) -> str:
    return "" if value is None else _text(value)
