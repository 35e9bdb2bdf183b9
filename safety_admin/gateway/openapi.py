"""The OpenAPI 3 document of /safety/* (served at /safety/openapi.json)."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}


def _err(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_COMMON = {
    "401": _err("No or invalid credentials (UNAUTHENTICATED)"),
    "405": _err("Wrong method"),
    "503": _err("Redis or the database is unreachable (SAFETY_UNAVAILABLE); nothing reached the model"),
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "Safety Admin API",
        "version": "1.0.0",
        "description": "Enforcement pipeline in front of a large language model. Errors are "
        '{"error": CODE, "detail": "…"}; no input yields a 500.',
    },
    "components": {
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        },
        "schemas": {
            "Error": _ERROR,
            "InferRequest": {
                "type": "object",
                "required": ["user_input"],
                "additionalProperties": False,
                "properties": {
                    "user_input": {"type": "string", "minLength": 1, "maxLength": 32000},
                    "system_prompt": {"type": "string", "maxLength": 32000},
                    "model": {"type": "string", "maxLength": 200},
                    "metadata": {"type": "object"},
                },
            },
            "Accepted": {
                "type": "object",
                "required": ["request_id", "status"],
                "properties": {
                    "request_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": ["queued", "in_review"]},
                },
            },
            "Refusal": {
                "type": "object",
                "required": ["refused", "reason_code", "explanation", "support_ticket_id"],
                "properties": {
                    "refused": {"type": "boolean", "enum": [True]},
                    "reason_code": {"type": "string"},
                    "explanation": {"type": "string"},
                    "support_ticket_id": {"type": "string", "pattern": "^audit-"},
                },
            },
            "Status": {
                "type": "object",
                "required": ["request_id", "status", "response", "reason_codes"],
                "properties": {
                    "request_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["pending", "completed", "in_review", "blocked", "failed"]},
                    "response": {"type": "string", "nullable": True},
                    "reason_codes": {"type": "array", "items": {"type": "string"}},
                    "response_truncated": {"type": "boolean"},
                    "failure_reason": {"type": "string", "nullable": True},
                },
            },
            "ReviewRequest": {
                "type": "object",
                "required": ["request_id", "decision"],
                "additionalProperties": False,
                "properties": {
                    "request_id": {"type": "string"},
                    "decision": {"type": "string", "enum": ["approve", "block"]},
                    "reviewer_id": {"type": "string", "maxLength": 200},
                    "notes": {"type": "string", "maxLength": 5000},
                },
            },
            "ReviewResult": {
                "type": "object",
                "required": ["request_id", "decision", "status"],
                "properties": {
                    "request_id": {"type": "string"},
                    "decision": {"type": "string"},
                    "status": {"type": "string"},
                },
            },
            "QueueDepth": {
                "type": "object",
                "required": ["inference", "review"],
                "properties": {
                    "inference": {"type": "integer"},
                    "review": {
                        "type": "object",
                        "properties": {s: {"type": "integer"} for s in ("low", "medium", "high", "critical")},
                    },
                },
            },
        },
    },
    "security": [{"apiKey": []}, {"bearer": []}],
    "paths": {
        "/safety/infer": {
            "post": {
                "summary": "Check a prompt and queue it for the model",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}}},
                },
                "responses": {
                    "202": {
                        "description": "Queued or sent to review",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
                    },
                    "400": {
                        "description": "Refused by the pre-check (Refusal) or invalid input (Error)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Refusal"},
                                        {"$ref": "#/components/schemas/Error"},
                                    ]
                                }
                            }
                        },
                    },
                    "403": _err("Suspended"),
                    "413": _err("Body or user_input too large"),
                    "422": _err("Idempotency-Key reused with a different body"),
                    "429": _err("Rate limited; see Retry-After"),
                    **_COMMON,
                },
            }
        },
        "/safety/status/{request_id}": {
            "get": {
                "summary": "Status of one request",
                "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "The request",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
                    },
                    "404": _err("Unknown, or another principal's request"),
                    **_COMMON,
                },
            }
        },
        "/safety/review": {
            "post": {
                "summary": "Approve or block an escalated request",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReviewRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "Decided",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReviewResult"}}},
                    },
                    "400": _err("Invalid input, or a missing note"),
                    "403": _err("Tier too low for this endpoint or severity"),
                    "404": _err("No escalation for this request"),
                    "409": _err("Already decided"),
                    "413": _err("Body too large"),
                    **_COMMON,
                },
            }
        },
        "/safety/queue/depth": {
            "get": {
                "summary": "Queue depths",
                "responses": {
                    "200": {
                        "description": "Depths",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueueDepth"}}},
                    },
                    **_COMMON,
                },
            }
        },
    },
}


@require_GET
def openapi_view(request):
    return JsonResponse(DOCUMENT)
