"""The committed JSON Schema matches the models, and it accepts what the models accept."""

from __future__ import annotations

import json
from pathlib import Path

from topics.catalogue import bootstrap_servers
from topics.schema import all_schemas, event_json_schema, render

SCHEMA_FILE = Path(__file__).parents[2] / "topics" / "event.schema.json"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "run: python -m topics.schema > topics/event.schema.json"
    )


def test_schema_names_every_event_type_and_required_field() -> None:
    schema = event_json_schema()
    kinds = {name for name in schema["$defs"]}
    assert kinds == {"PageView", "Complaint", "SupportCall", "Order"}
    assert set(schema["$defs"]["PageView"]["required"]) == {
        "event_id",
        "customer_id",
        "ts",
        "type",
        "page",
    }
    assert json.loads(json.dumps(schema)) == schema


def test_every_topic_has_a_schema() -> None:
    assert set(all_schemas()) == {
        "customer-events",
        "customer-events-enriched",
        "churn-predictions",
        "customer-events-dlq",
    }


def test_bootstrap_servers_from_faust_urls() -> None:
    assert bootstrap_servers("kafka://a:1;kafka://b:2") == "a:1,b:2"
    assert bootstrap_servers("b:9") == "b:9"
