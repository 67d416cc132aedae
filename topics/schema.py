"""JSON Schema of the event contract, for producers written in other languages.

`python -m topics.schema > topics/event.schema.json` regenerates the committed file.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from topics.events import CustomerEvent, DeadLetter, EnrichedEvent, PredictionRecord


def event_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for values on `customer-events`."""
    schema = TypeAdapter(CustomerEvent).json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "CustomerEvent"
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """Schemas of every topic's value, by topic."""
    return {
        "customer-events": event_json_schema(),
        "customer-events-enriched": EnrichedEvent.model_json_schema(),
        "churn-predictions": PredictionRecord.model_json_schema(),
        "customer-events-dlq": DeadLetter.model_json_schema(),
    }


def render() -> str:
    """The committed schema file's text."""
    return json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
