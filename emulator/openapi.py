"""Check recorded REST calls against Discord's own OpenAPI description (JSON Schema 2020-12 via jsonschema)."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

from .core import RestCall

# Discord's own description, shipped beside this module (MIT, see discord-api-spec/SOURCE.md);
# DISCORD_OPENAPI_SPEC points at a newer copy.
DEFAULT_SPEC = Path(
    os.environ.get("DISCORD_OPENAPI_SPEC") or Path(__file__).resolve().parent / "discord-api-spec" / "openapi.json"
)


def _shape(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


class OpenAPISpec:
    def __init__(self, path: str | Path = DEFAULT_SPEC) -> None:
        self.doc: dict[str, Any] = json.loads(Path(path).read_text())
        self._paths = {_shape(p): p for p in self.doc["paths"]}
        self._validators: dict[str, Any] = {}

    def operation(self, route_key: str) -> dict[str, Any] | None:
        """The spec operation for `"METHOD /template"`, whatever the parameter names."""
        method, template = route_key.split(" ", 1)
        path = self._paths.get(_shape(template))
        if path is None:
            return None
        return self.doc["paths"][path].get(method.lower())

    def _validator(self, schema: dict[str, Any], *, lenient: bool):
        from jsonschema import Draft202012Validator

        key = json.dumps(schema, sort_keys=True) + str(lenient)
        validator = self._validators.get(key)
        if validator is None:
            components = self.doc["components"]
            if lenient:
                # Discord's request parser takes snowflakes as integers too; discord.py sends them so
                # (recipient_id, attachment ids, bulk-delete ids), the spec describes only strings.
                schemas = dict(components["schemas"])
                snowflake = schemas["SnowflakeType"]
                schemas["SnowflakeType"] = {"anyOf": [snowflake, {"type": "integer", "minimum": 0}]}
                components = {**components, "schemas": schemas}
            # Local refs (#/components/...) resolve against this root, so graft the components onto it.
            root = {**schema, "components": components}
            validator = Draft202012Validator(root)
            self._validators[key] = validator
        return validator

    def _errors(self, schema: dict[str, Any], instance: Any, what: str, *, lenient: bool = False) -> list[str]:
        validator = self._validator(schema, lenient=lenient)
        out = []
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
            best = err
            # For oneOf/anyOf failures the deepest sub-error says what is actually wrong.
            if err.context:
                best = max(err.context, key=lambda e: len(list(e.absolute_path)))
            loc = "/".join(str(p) for p in best.absolute_path)
            out.append(f"{what} at /{loc}: {best.message[:300]}")
        return out

    def check_request(self, call: RestCall) -> list[str]:
        op = self.operation(call.route or "")
        if op is None:
            return [f"{call.route}: not in Discord's OpenAPI description"]
        body = op.get("requestBody")
        if call.body is None:
            if body is not None and body.get("required") and call.method not in ("DELETE",):
                return [f"{call.route}: the spec requires a request body"]
            return []
        if body is None:
            return [f"{call.route}: sent a body the spec does not describe"]
        content = body["content"]
        media = "multipart/form-data" if call.content_type == "multipart/form-data" else "application/json"
        schema = (content.get(media) or content.get("application/json") or {}).get("schema")
        if schema is None:
            return [f"{call.route}: no schema for {media}"]
        return self._errors(schema, _coerce_permissions(call.body), f"{call.route} request", lenient=True)

    def check_response(self, call: RestCall) -> list[str]:
        op = self.operation(call.route or "")
        if op is None:
            return [f"{call.route}: not in Discord's OpenAPI description"]
        responses = op["responses"]
        status = str(call.status)
        spec = responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
        if spec is None:
            return [f"{call.route}: status {status} is not documented (documented: {sorted(responses)})"]
        if "$ref" in spec:
            spec = self.resolve(spec["$ref"])
        schema = (spec.get("content") or {}).get("application/json", {}).get("schema")
        if schema is None:
            return [] if call.response is None else [f"{call.route}: {status} should have no body"]
        if call.response is None:
            return [f"{call.route}: {status} should have a body"]
        return self._errors(schema, call.response, f"{call.route} {status} response")

    def resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node


def _coerce_permissions(body: Any) -> Any:
    """Permission bitfields travel as strings (discord.py sends role permissions so); Discord parses them
    into the integers its spec describes."""
    if isinstance(body, dict):
        return {
            k: int(v) if k == "permissions" and isinstance(v, str) and v.isdigit() else _coerce_permissions(v)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_coerce_permissions(v) for v in body]
    return body


@cache
def default_spec() -> OpenAPISpec:
    return OpenAPISpec()
