"""Validation of /safety/* request bodies. Errors carry a message that says what to fix."""

import json
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http.request import RawPostDataException

from safety_admin.gateway import errors


class BadRequest(Exception):
    """Carries the contract error code and a message for the client."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


MAX_METADATA_DEPTH = 8
MAX_SHORT_FIELD = 200


def _check_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise BadRequest(errors.INVALID_REQUEST, f"{name} contains a NUL character; remove it.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(errors.INVALID_REQUEST, f"{name} contains a lone surrogate (invalid UTF-16 escape).") from None


def _check_metadata(value, depth: int = 0) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise BadRequest(errors.INVALID_REQUEST, f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels.")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text("metadata key", key)
            _check_metadata(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_metadata(item, depth + 1)
    elif isinstance(value, str):
        _check_text("metadata value", value)


def _reject_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise json.JSONDecodeError(f"{text} is out of range", text, 0)
    return value


def read_json_object(request) -> dict:
    """The body as a JSON object, or BadRequest (400 INVALID_REQUEST / 413 PAYLOAD_TOO_LARGE)."""
    limit = settings.SAFETY_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise BadRequest(errors.PAYLOAD_TOO_LARGE, errors.MSG_BODY_TOO_LARGE.format(limit=limit))
    try:
        raw = request.body
    except (RequestDataTooBig, RawPostDataException):
        raise BadRequest(errors.PAYLOAD_TOO_LARGE, errors.MSG_BODY_TOO_LARGE.format(limit=limit)) from None
    if len(raw) > limit:
        raise BadRequest(errors.PAYLOAD_TOO_LARGE, errors.MSG_BODY_TOO_LARGE.format(limit=limit))
    if not raw.strip():
        raise BadRequest(errors.INVALID_REQUEST, "The body is empty; send a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(errors.INVALID_REQUEST, f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        # NaN/Infinity (and 1e999) are not JSON numbers and jsonb refuses them: a 400 here, not a 503 at save time.
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadRequest(errors.INVALID_REQUEST, "The JSON body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            errors.INVALID_REQUEST, f"The body is not valid JSON: {exc.msg} at line {exc.lineno}."
        ) from None
    except ValueError:  # an integer longer than Python's 4300-digit conversion limit
        raise BadRequest(errors.INVALID_REQUEST, "The body has a number too long to read.") from None
    if not isinstance(data, dict):
        raise BadRequest(errors.INVALID_REQUEST, "The body must be a JSON object.")
    return data


def _reject_unknown(data: dict, allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(
            errors.INVALID_REQUEST, f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}."
        )


@dataclass(frozen=True)
class InferBody:
    user_input: str
    system_prompt: str
    model: str
    metadata: dict


def parse_infer(data: dict) -> InferBody:
    """Validate ``{"user_input": str, "system_prompt"?: str, "model"?: str, "metadata"?: object}``."""
    _reject_unknown(data, {"user_input", "system_prompt", "model", "metadata"})
    user_input = data.get("user_input")
    if not isinstance(user_input, str):
        raise BadRequest(errors.INVALID_REQUEST, "user_input is required and must be a string.")
    if not user_input.strip():
        raise BadRequest(errors.INVALID_REQUEST, "user_input is empty.")
    limit = settings.SAFETY_MAX_INPUT_CHARS
    if len(user_input) > limit:
        raise BadRequest(errors.PAYLOAD_TOO_LARGE, errors.MSG_INPUT_TOO_LONG.format(limit=limit))
    system_prompt = data.get("system_prompt", "")
    if system_prompt is None:
        system_prompt = ""
    if not isinstance(system_prompt, str):
        raise BadRequest(errors.INVALID_REQUEST, "system_prompt must be a string.")
    if len(system_prompt) > limit:
        raise BadRequest(errors.PAYLOAD_TOO_LARGE, f"system_prompt is longer than {limit} characters.")
    model = data.get("model", "") or ""
    if not isinstance(model, str) or len(model) > MAX_SHORT_FIELD:
        raise BadRequest(errors.INVALID_REQUEST, f"model must be a string of at most {MAX_SHORT_FIELD} characters.")
    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise BadRequest(errors.INVALID_REQUEST, "metadata must be a JSON object.")
    for name, value in (("user_input", user_input), ("system_prompt", system_prompt), ("model", model)):
        _check_text(name, value)
    _check_metadata(metadata)
    return InferBody(user_input=user_input, system_prompt=system_prompt, model=model, metadata=metadata)


@dataclass(frozen=True)
class ReviewBody:
    request_id: str
    decision: str
    reviewer_id: str
    notes: str


def parse_review(data: dict) -> ReviewBody:
    """Validate ``{"request_id", "decision": "approve"|"block", "reviewer_id", "notes"}``."""
    _reject_unknown(data, {"request_id", "decision", "reviewer_id", "notes"})
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise BadRequest(errors.INVALID_REQUEST, "request_id is required and must be a string.")
    decision = data.get("decision")
    if decision not in {"approve", "block"}:
        raise BadRequest(errors.INVALID_REQUEST, 'decision must be "approve" or "block".')
    reviewer_id = data.get("reviewer_id", "") or ""
    notes = data.get("notes", "") or ""
    if not isinstance(reviewer_id, str) or len(reviewer_id) > MAX_SHORT_FIELD:
        raise BadRequest(
            errors.INVALID_REQUEST, f"reviewer_id must be a string of at most {MAX_SHORT_FIELD} characters."
        )
    if not isinstance(notes, str) or len(notes) > 5000:
        raise BadRequest(errors.INVALID_REQUEST, "notes must be a string of at most 5000 characters.")
    for name, value in (("request_id", request_id), ("reviewer_id", reviewer_id), ("notes", notes)):
        _check_text(name, value)
    return ReviewBody(request_id=request_id, decision=decision, reviewer_id=reviewer_id, notes=notes)
