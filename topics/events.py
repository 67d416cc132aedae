"""Pydantic models of every message value on the topics.

Raw events are validated strictly (no silent coercion of `42` into `"42"`): a producer
that sends the wrong type gets its event dead-lettered with the field named, rather than
counted under a customer it did not mean.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

# Event times outside this range are producer bugs (seconds sent as ms, a zero clock, ...).
MIN_EVENT_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PagePath = Annotated[str, StringConstraints(pattern=r"^/", max_length=2048)]


# The serving roles, on every prediction record as `model_role`. Each is also the registry
# alias (models.aliases) naming the version that plays it.
Role = Literal["champion", "challenger"]
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
ROLES: tuple[Role, ...] = get_args(Role)


class EventType(StrEnum):
    """The event types producers may publish."""

    PAGE_VIEW = "page_view"
    COMPLAINT = "complaint"
    SUPPORT_CALL = "support_call"
    ORDER = "order"


def to_epoch_ms(value: object) -> int:
    """Normalise an RFC 3339 string or integer epoch milliseconds to epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 string or integer epoch milliseconds")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            raise ValueError("RFC 3339 timestamp needs a time zone offset (e.g. 'Z')")
        ms = int(parsed.timestamp() * 1000)
    else:
        raise ValueError("must be an RFC 3339 string or integer epoch milliseconds")
    if ms < MIN_EVENT_TS_MS:
        raise ValueError(f"{ms} is before 2000-01-01 (seconds instead of milliseconds?)")
    if ms > time.time() * 1000 + MAX_FUTURE_SKEW_MS:
        raise ValueError(f"{ms} is more than a day in the future")
    return ms


EpochMillis = Annotated[
    int,
    BeforeValidator(to_epoch_ms),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": MIN_EVENT_TS_MS},
            ],
            "description": "RFC 3339 timestamp or integer epoch milliseconds",
        }
    ),
]


class _Event(BaseModel):
    """Fields every event has. Unknown fields are kept and carried along."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    event_id: NonEmptyStr
    customer_id: NonEmptyStr
    ts: EpochMillis


class PageView(_Event):
    """A customer viewed a page."""

    type: Literal[EventType.PAGE_VIEW]
    page: PagePath


class Complaint(_Event):
    """A customer complained."""

    type: Literal[EventType.COMPLAINT]


class SupportCall(_Event):
    """A customer called support."""

    type: Literal[EventType.SUPPORT_CALL]


class Order(_Event):
    """A customer placed an order."""

    type: Literal[EventType.ORDER]
    amount: float | None = None


CustomerEvent = Annotated[PageView | Complaint | SupportCall | Order, Field(discriminator="type")]


class SourcePosition(BaseModel):
    """Where a message was read from: a dead letter's origin, an enriched event's source."""

    topic: str
    partition: int
    offset: int


class EnrichedEvent(BaseModel):
    """Value on `customer-events-enriched`: a first-seen event and the profile it joined."""

    model_config = ConfigDict(extra="allow")

    event: dict[str, Any] = Field(description="the validated event, `ts` as epoch ms")
    profile: dict[str, str | int | float] = Field(
        description="the profile after this event's counters were applied"
    )
    enriched_at: int = Field(description="epoch ms when the join happened")
    source: SourcePosition | None = Field(
        None,
        description="the `customer-events` message the event was read from; a redelivered "
        "message enriched again carries the same source, so readers can tell the copies apart "
        "(absent on records of releases before it)",
    )


class PredictionRecord(BaseModel):
    """Value on `churn-predictions`: one scored event and the features behind the score."""

    event_id: str
    customer_id: str
    event_type: str
    features: dict[str, float]
    churn_score: float = Field(ge=0.0, le=1.0)
    model_version: str
    model_role: Role = CHAMPION
    event_ts: int = Field(description="epoch ms of the event")
    scored_at: int = Field(description="epoch ms when the score was computed")


class Stage(StrEnum):
    """Where in the worker a message was handled: metric labels and dead letters name it."""

    VALIDATION = "validation"
    ENRICHMENT = "enrichment"
    COUNTING = "counting"
    PREDICTION = "prediction"


class DeadLetter(BaseModel):
    """Value on `customer-events-dlq`: an unprocessable message, its reason and its origin."""

    reason: str
    error_type: str
    stage: Stage
    source: SourcePosition
    failed_at: int = Field(description="epoch ms")
    key: str | None = Field(description="the message key as UTF-8, when it decodes")
    payload: str | None = Field(description="the original value as UTF-8, when it decodes")
    payload_b64: str = Field(description="the original value bytes, base64, for exact replay")


def utc_now_ms() -> int:
    """Current time as epoch milliseconds."""
    return int(datetime.now(UTC).timestamp() * 1000)
