"""The OpenAPI 3.1 document of the JSON API ``/api/v1`` (served by
:mod:`keerpunt.settlement.api`), and the small checker that holds request bodies to it.

The document is the one source of truth for the API's shape: the handlers check bodies
against :data:`SCHEMAS` with :func:`shape_errors` (only the JSON Schema words used here), and
a schemathesis test checks every response against it. What the values mean is checked by the
same domain functions as the browser's forms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from keerpunt.platform.i18n import N_
from keerpunt.settlement.api_tokens import Scope

__all__ = ["MAX_LINES", "OPENAPI", "PROBLEM", "SCHEMAS", "shape_errors"]

PROBLEM = "application/problem+json"
MAX_LINES = 500

# ---- the OpenAPI document ----

_DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_STR = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `detail` in the language of Accept-Language.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/LineError"}},
        },
    },
    "LineError": {
        "type": "object",
        "description": (
            "Why a line (or a part of the request) was refused: `code` is stable for machines, "
            "`detail` is the text the browser form shows."
        ),
        "required": ["index", "reference", "field", "code", "detail"],
        "properties": {
            "index": {**_NULLABLE_INT, "description": "Position of the line, from 0."},
            "reference": _NULLABLE_STR,
            "field": {"type": "string"},
            "code": {"type": "string"},
            "detail": {"type": "string"},
        },
    },
    "Allocation": {
        "type": "object",
        "description": "A toewijzing; no personal data, the number identifies it.",
        "required": [
            "number",
            "variant",
            "product_category",
            "product_code",
            "volume",
            "unit",
            "frequency",
            "budget_cents",
            "start",
            "end",
        ],
        "properties": {
            "number": {"type": "string"},
            "variant": {"type": "string", "enum": ["specific", "aspecific", "generic", "output"]},
            "product_category": _NULLABLE_STR,
            "product_code": _NULLABLE_STR,
            "volume": _NULLABLE_INT,
            "unit": {**_NULLABLE_STR, "description": "iJw unit: 01, 04, 14, 16, 82, 83, 84."},
            "frequency": {**_NULLABLE_STR, "description": "iJw: 1 day, 2 week, 4 month, 6 total."},
            "budget_cents": _NULLABLE_INT,
            "start": _DATE,
            "end": {**_DATE, "description": "Inclusive."},
        },
    },
    "AllocationList": {
        "type": "object",
        "required": ["allocations"],
        "properties": {
            "allocations": {"type": "array", "items": {"$ref": "#/components/schemas/Allocation"}}
        },
    },
    "DeliveryLine": {
        "type": "object",
        "description": "Delivered care (geleverde zorg) over a period within one calendar month.",
        "required": ["reference", "allocation_number", "product_code", "start", "end", "volume"],
        "additionalProperties": False,
        "properties": {
            "reference": {
                "type": "string",
                "pattern": r"^[A-Za-z0-9._:/-]{1,64}$",
                "description": (
                    "Your own unique reference of this line. Posting it again with the same "
                    "content does not add it twice; with other content it is refused."
                ),
            },
            "allocation_number": {"type": "string", "pattern": r"^[0-9A-Za-z][0-9A-Za-z-]{0,19}$"},
            "product_code": {"type": "string", "pattern": r"^[0-9A-Za-z]{5}$"},
            "start": _DATE,
            "end": {**_DATE, "description": "Inclusive; in the same month as start."},
            "volume": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
        },
    },
    "DeliveryBatch": {
        "type": "object",
        "description": "One or more lines: all are saved, or none.",
        "required": ["deliveries"],
        "additionalProperties": False,
        "properties": {
            "deliveries": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_LINES,
                "items": {"$ref": "#/components/schemas/DeliveryLine"},
            }
        },
    },
    "RecordedLine": {
        "type": "object",
        "required": [
            "reference",
            "id",
            "created",
            "allocation_number",
            "product_code",
            "start",
            "end",
            "volume",
        ],
        "properties": {
            "reference": {"type": "string"},
            "id": {"type": "integer"},
            "created": {
                "type": "boolean",
                "description": "false: this reference was recorded before and is not added again",
            },
            "allocation_number": {"type": "string"},
            "product_code": {"type": "string"},
            "start": _DATE,
            "end": _DATE,
            "volume": {"type": "integer"},
        },
    },
    "RecordedBatch": {
        "type": "object",
        "required": ["deliveries"],
        "properties": {
            "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/RecordedLine"}}
        },
    },
    "Delivery": {
        "type": "object",
        "description": (
            "A delivery line with what settlement would make of it now: accepted with tariff "
            "and amount in cents (volume × tariff, rounded half away from zero once), or "
            "rejected with the reason."
        ),
        "required": [
            "id",
            "reference",
            "allocation_number",
            "product_code",
            "start",
            "end",
            "volume",
            "status",
            "unit",
            "tariff_cents",
            "amount_cents",
            "reason_code",
            "reason",
        ],
        "properties": {
            "id": {"type": "integer"},
            "reference": _NULLABLE_STR,
            "allocation_number": {"type": "string"},
            "product_code": {"type": "string"},
            "start": _DATE,
            "end": _DATE,
            "volume": {"type": "integer"},
            "status": {"type": "string", "enum": ["accepted", "rejected"]},
            "unit": _NULLABLE_STR,
            "tariff_cents": _NULLABLE_INT,
            "amount_cents": _NULLABLE_INT,
            "reason_code": _NULLABLE_STR,
            "reason": _NULLABLE_STR,
        },
    },
    "DeliveryList": {
        "type": "object",
        "required": ["start", "end", "deliveries"],
        "properties": {
            "start": _DATE,
            "end": _DATE,
            "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}},
        },
    },
}


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_AUTH_PROBLEMS = {
    "401": _problem_response("No valid token: missing, unknown, expired or revoked."),
    "403": _problem_response("The token lacks the scope this operation needs."),
}

_UNKNOWN_PARAMETER = _problem_response("A query parameter this operation does not have.")

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Keerpunt API",
        "version": "1.0.0",
        "description": (
            "For a provider's own system: its allocations (toewijzingen), posting delivered "
            "care (geleverde zorg), and reading it back priced. One token per organisation, "
            "made on the page 'API-sleutel' by the organisation's finance staff."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/allocations": {
            "get": {
                "operationId": "listAllocations",
                "summary": "The allocations the organisation may deliver under.",
                "x-scope": Scope.ALLOCATIONS_READ.value,
                "responses": {
                    "200": _json_response("Allocations, by number.", "AllocationList"),
                    "400": _UNKNOWN_PARAMETER,
                    **_AUTH_PROBLEMS,
                },
            }
        },
        "/api/v1/allocations/{number}": {
            "get": {
                "operationId": "getAllocation",
                "summary": "One allocation; another organisation's is not found.",
                "x-scope": Scope.ALLOCATIONS_READ.value,
                "parameters": [
                    {
                        "name": "number",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": r"^[0-9A-Za-z][0-9A-Za-z-]{0,19}$"},
                    }
                ],
                "responses": {
                    "200": _json_response("The allocation.", "Allocation"),
                    "400": _UNKNOWN_PARAMETER,
                    **_AUTH_PROBLEMS,
                    "404": _problem_response("No such allocation for this organisation."),
                },
            }
        },
        "/api/v1/deliveries": {
            "get": {
                "operationId": "listDeliveries",
                "summary": "The organisation's delivery lines starting in a month or quarter.",
                "x-scope": Scope.DELIVERIES_READ.value,
                "parameters": [
                    {
                        "name": "period",
                        "in": "query",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "pattern": r"^[12]\d{3}(-(0[1-9]|1[0-2])|Q[1-4])$",
                        },
                        "example": "2026-07",
                    }
                ],
                "responses": {
                    "200": _json_response("The lines, priced.", "DeliveryList"),
                    "400": _problem_response(
                        "The period is not a month or quarter, or an unknown parameter."
                    ),
                    **_AUTH_PROBLEMS,
                },
            },
            "post": {
                "operationId": "postDeliveries",
                "summary": "Record delivered care: every line, or none.",
                "x-scope": Scope.DELIVERIES_WRITE.value,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/DeliveryBatch"}
                        }
                    },
                },
                "responses": {
                    "201": _json_response(
                        "Recorded (some lines may have been before).", "RecordedBatch"
                    ),
                    "200": _json_response(
                        "Every line was recorded before: nothing added.", "RecordedBatch"
                    ),
                    "400": _problem_response("The body is not JSON, or an unknown parameter."),
                    **_AUTH_PROBLEMS,
                    "409": _problem_response(
                        "Another post with the same reference came in at the same time; retry."
                    ),
                    "413": _problem_response("The body is too large."),
                    "415": _problem_response("The body is not application/json."),
                    "422": _problem_response("A line was refused (see errors); nothing saved."),
                },
            },
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The organisation's API token, kp_ followed by 43 characters.",
            }
        },
        "schemas": SCHEMAS,
    },
}

# ---- checking a body against the schemas above ----

_MISSING = N_("Dit veld ontbreekt.")
_UNKNOWN = N_("Dit veld kennen we niet.")
_WRONG = N_("Dit veld heeft niet de goede vorm. Kijk in het OpenAPI-document wat er kan.")
_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
}


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    return SCHEMAS[ref.rsplit("/", 1)[1]] if ref else schema


def shape_errors(
    value: object, schema: Mapping[str, Any], path: str = ""
) -> list[tuple[str, str, str]]:
    """(field path, code, message id) for each place ``value`` does not fit ``schema``; only
    the JSON Schema words the document above uses."""
    schema = _resolve(schema)
    kind = schema.get("type")
    allowed = _TYPES.get(kind, ()) if isinstance(kind, str) else ()
    if allowed and (
        not isinstance(value, allowed) or (kind == "integer" and isinstance(value, bool))
    ):
        return [(path or "body", "invalid_format", _WRONG)]
    out: list[tuple[str, str, str]] = []
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        out += [(f"{path}{k}" if not path else f"{path}.{k}", "missing", _MISSING)
                for k in schema.get("required", []) if k not in value]  # fmt: skip
        for k, v in value.items():
            where = k if not path else f"{path}.{k}"
            if k in props:
                out += shape_errors(v, props[k], where)
            elif schema.get("additionalProperties") is False:
                out.append((where, "unknown_field", _UNKNOWN))
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get(
            "maxItems", len(value)
        ):
            out.append((path, "invalid_format", _WRONG))
        for i, item in enumerate(value):
            out += shape_errors(item, schema.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, value, re.ASCII):
            out.append((path, "invalid_format", _WRONG))
    elif isinstance(value, int):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            out.append((path, "invalid_format", _WRONG))
    return out
