"""The published JSON Schema of a request (docs/schemas/request.v1.json): the model's own schema
plus the optional trace fields that are taken off before validation (``shared.intake.trace``)."""

from __future__ import annotations

from typing import Any

from shared.intake import trace
from shared.intake.request import BatchRequest


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a request (docs/schemas/request.v1.json)."""
    schema = BatchRequest.model_json_schema()
    schema["properties"].update(trace.schema_properties())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://vnode-batch.dev/schemas/request.v1.json"
    return schema
