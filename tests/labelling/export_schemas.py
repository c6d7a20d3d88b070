"""JSON Schemas of the export formats as bot/labelling/export.py documents them, for checking files that
came out of any path (the CLI, /admin export). ``check_lines(fmt, records)`` raises on the first bad one."""

from __future__ import annotations

from typing import Any

import jsonschema

ID = {"type": "string", "pattern": r"^\d+$"}
TURN = {"type": "object", "required": ["role", "content"], "additionalProperties": False,
        "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}}

_MESSAGE_FIELDS: dict[str, Any] = {
    "message_id": ID,
    "parent_id": ID,
    "user_id": {"type": "string", "minLength": 1},
    "created_date": {"type": "string", "format": "date-time"},
    "text": {"type": "string"},
    "role": {"enum": ["prompter", "assistant"]},
    "lang": {"type": "string", "minLength": 2},
    "review_count": {"type": "integer", "minimum": 0},
    "review_result": {"type": "boolean"},
    "deleted": {"type": "boolean"},
    "rank": {"type": "integer", "minimum": 0},
    "synthetic": {"type": "boolean"},
    "model_name": {"type": "string", "minLength": 1},
}
_MESSAGE_REQUIRED = ["message_id", "created_date", "text", "role", "review_count", "deleted", "synthetic"]

NESTED_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": _MESSAGE_REQUIRED,
    "additionalProperties": False,
    "properties": {
        **_MESSAGE_FIELDS,
        "emojis": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer", "minimum": 1}},
        "labels": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["value", "count"], "additionalProperties": False,
            "properties": {"value": {"type": "number"}, "count": {"type": "integer", "minimum": 1}}}},
        "replies": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/message"}},
    },
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "oasst-trees": {
        "$defs": {"message": NESTED_MESSAGE},
        "type": "object",
        "required": ["message_tree_id", "tree_state", "prompt"],
        "additionalProperties": False,
        "properties": {"message_tree_id": ID, "tree_state": {"type": "string"},
                       "prompt": {"$ref": "#/$defs/message",
                                  "not": {"required": ["parent_id"]}}},
    },
    "oasst-messages": {
        "type": "object",
        "required": [*_MESSAGE_REQUIRED, "message_tree_id", "tree_state"],
        "additionalProperties": False,
        "properties": {
            **_MESSAGE_FIELDS,
            "message_tree_id": ID,
            "tree_state": {"type": "string"},
            "emojis": {"type": "object", "required": ["name", "count"], "additionalProperties": False,
                       "properties": {"name": {"type": "array", "items": {"type": "string"}},
                                      "count": {"type": "array", "items": {"type": "integer"}}}},
            "labels": {"type": "object", "required": ["name", "value", "count"], "additionalProperties": False,
                       "properties": {"name": {"type": "array", "items": {"type": "string"}},
                                      "value": {"type": "array", "items": {"type": "number"}},
                                      "count": {"type": "array", "items": {"type": "integer"}}}},
        },
    },
    "preferences": {
        "type": "object",
        "required": ["prompt", "chosen", "rejected", "source", "chosen_id", "rejected_id"],
        "properties": {
            "prompt": {"type": "array", "minItems": 1, "items": TURN},
            "chosen": {"type": "array", "minItems": 1, "maxItems": 1, "items": TURN},
            "rejected": {"type": "array", "minItems": 1, "maxItems": 1, "items": TURN},
            "source": {"enum": ["ranking", "chat"]},
            "message_tree_id": ID, "parent_id": ID, "conversation_id": ID, "chosen_id": ID, "rejected_id": ID,
            "chosen_rank": {"type": "integer", "minimum": 0}, "rejected_rank": {"type": "integer", "minimum": 0},
            "lang": {"type": "string"}, "model_name": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "ratings": {
        "type": "object",
        "required": ["prompt", "completion", "label", "source", "user_id", "conversation_id", "message_id"],
        "additionalProperties": False,
        "properties": {
            "prompt": {"type": "array", "minItems": 1, "items": TURN},
            "completion": {"type": "array", "minItems": 1, "maxItems": 1, "items": TURN},
            "label": {"type": "boolean"},
            "source": {"enum": ["chat"]},
            "user_id": {"type": "string", "minLength": 1},
            "model_name": {"type": "string"}, "lang": {"type": "string"},
            "conversation_id": ID, "message_id": ID,
        },
    },
    "sft": {
        "type": "object",
        "required": ["messages", "message_tree_id"],
        "additionalProperties": False,
        "properties": {"messages": {"type": "array", "minItems": 2, "items": TURN}, "message_tree_id": ID,
                       "lang": {"type": "string"}},
    },
}


def check_lines(fmt: str, records: list[dict[str, Any]]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMAS[fmt], format_checker=jsonschema.FormatChecker())
    for number, record in enumerate(records, 1):
        error = jsonschema.exceptions.best_match(validator.iter_errors(record))
        if error is not None:
            raise AssertionError(f"{fmt} line {number}: {error.message} at {list(error.absolute_path)}")
        if fmt == "sft":
            assert record["messages"][-1]["role"] == "assistant", f"sft line {number} must end on the assistant"
