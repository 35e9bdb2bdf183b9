"""The error codes and messages of the HTTP contract (DESIGN.md §2)."""

from django.http import JsonResponse

UNAUTHENTICATED = "UNAUTHENTICATED"
SUSPENDED = "SUSPENDED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
ALREADY_DECIDED = "ALREADY_DECIDED"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
INVALID_REQUEST = "INVALID_REQUEST"
IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
RATE_LIMITED = "RATE_LIMITED"
SAFETY_UNAVAILABLE = "SAFETY_UNAVAILABLE"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
INTERNAL_ERROR = "INTERNAL_ERROR"

STATUS = {
    UNAUTHENTICATED: 401,
    SUSPENDED: 403,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    ALREADY_DECIDED: 409,
    PAYLOAD_TOO_LARGE: 413,
    INVALID_REQUEST: 400,
    IDEMPOTENCY_CONFLICT: 422,
    RATE_LIMITED: 429,
    INTERNAL_ERROR: 500,
    SAFETY_UNAVAILABLE: 503,
}

MSG_NO_CREDENTIALS = "Send an API key in X-API-Key or a JWT in 'Authorization: Bearer …'."
MSG_BAD_CREDENTIALS = "The API key or token is not valid. Check it, or ask an admin for a new key."
MSG_SUSPENDED = "This client is suspended until {until}. Contact the trust and safety team."
MSG_UNAVAILABLE = "The safety service cannot check requests right now; nothing was sent to the model. Retry shortly."
MSG_RATE_LIMITED = "Too many requests for this client. Retry after {seconds} s."
MSG_IDEMPOTENCY = "This Idempotency-Key was already used with a different body. Use a new key for a new request."
MSG_BODY_TOO_LARGE = "The body is larger than {limit} bytes."
MSG_INPUT_TOO_LONG = "user_input is longer than {limit} characters. Shorten it or split it."
MSG_NOT_FOUND = "No such request for this client."
MSG_ALREADY_DECIDED = "Already decided by {who}: {decision}."
MSG_FORBIDDEN_SEVERITY = "Your tier ({tier}) may not decide {severity}-severity escalations."
MSG_FORBIDDEN_TIER = "This endpoint needs the {tier} tier or higher."
MSG_INTERNAL = (
    "Something went wrong on our side; it has been logged. Retry, or contact the operators with the trace id."
)


def error_response(code: str, detail: str, *, headers: dict | None = None) -> JsonResponse:
    """A JSON error in the contract's shape: ``{"error": CODE, "detail": "…"}``."""
    response = JsonResponse({"error": code, "detail": detail}, status=STATUS[code])
    for name, value in (headers or {}).items():
        response[name] = value
    return response
