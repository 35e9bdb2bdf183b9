"""The /safety/* HTTP API (DESIGN.md §2). Thin: parse, authenticate, one service call, JSON out."""

import functools
import logging
import time
import uuid

from django.db import DatabaseError, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from safety_admin import context, metrics
from safety_admin.accounts.models import tier_allows_severity, tier_at_least
from safety_admin.detectors import check
from safety_admin.detectors.types import ACTION_RANK
from safety_admin.gateway import errors, selectors
from safety_admin.gateway.auth import AuthenticationFailed, Principal, authenticate
from safety_admin.gateway.idempotency import MAX_KEY_LENGTH, Stored, body_hash, idempotency_get, idempotency_put
from safety_admin.gateway.ratelimit import rate_limit_take
from safety_admin.gateway.schemas import BadRequest, parse_infer, parse_review, read_json_object
from safety_admin.inference import services as inference_services
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.policies.runtime import active_ruleset
from safety_admin.redis_conn import fast_redis

log = logging.getLogger(__name__)


def api_view(*methods: str):
    """JSON API view: method check (405), fail closed on DB/Redis errors (503), never a bare 500 page."""

    def decorator(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = errors.error_response(
                    errors.METHOD_NOT_ALLOWED, f"Use {' or '.join(methods)} on this endpoint."
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except AuthenticationFailed as exc:
                log.info("authentication failed", extra={"event": "gateway.unauthenticated", "why": str(exc)})
                detail = errors.MSG_NO_CREDENTIALS if str(exc) == "no credentials" else errors.MSG_BAD_CREDENTIALS
                return errors.error_response(errors.UNAUTHENTICATED, detail, headers={"WWW-Authenticate": "Bearer"})
            except BadRequest as exc:
                return errors.error_response(exc.code, exc.detail)
            except (DatabaseError, RedisError, OSError) as exc:
                metrics.REQUESTS.labels(outcome="unavailable").inc()
                log.error("dependency unavailable", extra={"event": "gateway.unavailable", "error": type(exc).__name__})
                return errors.error_response(errors.SAFETY_UNAVAILABLE, errors.MSG_UNAVAILABLE)

        return wrapper

    return decorator


def _gate(request) -> Principal | JsonResponse:
    """Authenticate, check suspension and rate limit; a response means stop here."""
    principal = authenticate(request)
    context.bind(user=principal.pseudonym)
    suspension = selectors.suspension_active(principal_id=principal.principal_id)
    if suspension is not None:
        return errors.error_response(errors.SUSPENDED, errors.MSG_SUSPENDED.format(until=suspension.until.isoformat()))
    decision = rate_limit_take(principal.pseudonym, principal.tier)
    if not decision.allowed:
        metrics.REQUESTS.labels(outcome="rate_limited").inc()
        return errors.error_response(
            errors.RATE_LIMITED,
            errors.MSG_RATE_LIMITED.format(seconds=decision.retry_after),
            headers={"Retry-After": str(decision.retry_after)},
        )
    return principal


def _precheck(body, ruleset):
    started = time.perf_counter()
    verdict = check(body.user_input, "prompt", ruleset)
    hits = inference_services.hits_payload(verdict, "user_input")
    if body.system_prompt:
        extra = check(body.system_prompt, "prompt", ruleset)
        if extra.hits:
            hits += inference_services.hits_payload(extra, "system_prompt")
            verdict = type(verdict)(
                action=max((verdict.action, extra.action), key=ACTION_RANK.__getitem__),
                hits=verdict.hits + extra.hits,
                elapsed_us=verdict.elapsed_us + extra.elapsed_us,
                ruleset_version=verdict.ruleset_version,
            )
    metrics.DETECTION_LATENCY.labels(direction="prompt").observe(time.perf_counter() - started)
    return verdict, hits


@api_view("POST")
def infer(request):
    """POST /safety/infer: authenticate, limit, pre-check, then refuse (400), escalate or queue (202)."""
    gate = _gate(request)
    if isinstance(gate, JsonResponse):
        return gate
    principal = gate
    data = read_json_object(request)
    idem_key = request.headers.get("Idempotency-Key", "").strip()
    digest = body_hash(request.body)
    if idem_key:
        if len(idem_key) > MAX_KEY_LENGTH or not idem_key.isprintable():
            raise BadRequest(
                errors.INVALID_REQUEST, f"Idempotency-Key must be printable, at most {MAX_KEY_LENGTH} chars."
            )
        stored = idempotency_get(principal.pseudonym, idem_key)
        if stored is not None:
            if stored.body_hash != digest:
                return errors.error_response(errors.IDEMPOTENCY_CONFLICT, errors.MSG_IDEMPOTENCY)
            response = JsonResponse(stored.payload, status=stored.status)
            response["Idempotent-Replayed"] = "true"
            return response
    body = parse_infer(data)
    ruleset = active_ruleset(principal.profile, metadata=body.metadata)
    verdict, hits = _precheck(body, ruleset)
    req, event = inference_services.inference_request_create(
        principal=principal,
        user_input=body.user_input,
        system_prompt=body.system_prompt,
        model_name=body.model,
        metadata=body.metadata,
        verdict=verdict,
        hits=hits,
        trace_id=getattr(request, "trace_id", ""),
    )
    context.bind(request_id=str(req.pk))
    if req.status == RequestStatus.REFUSED:
        status, payload, outcome = (
            400,
            {
                "refused": True,
                "reason_code": verdict.primary_reason_code,
                "explanation": "request denied",
                "support_ticket_id": event.ticket_id,
            },
            "refused",
        )
    elif req.status == RequestStatus.IN_REVIEW:
        status, payload, outcome = 202, {"request_id": str(req.pk), "status": "in_review"}, "review"
    else:
        # Enqueue after commit on the fast connection; if Redis fails now the row stays pending for the sweep.
        inference_services.inference_enqueue(req.pk, trace_id=req.trace_id, connection=fast_redis())
        status, payload, outcome = 202, {"request_id": str(req.pk), "status": "queued"}, "queued"
    metrics.REQUESTS.labels(outcome=outcome).inc()
    log.info("request %s", outcome, extra={"event": f"gateway.request.{outcome}",
                                           "reason_code": verdict.primary_reason_code})  # fmt: skip
    if idem_key:
        idempotency_put(principal.pseudonym, idem_key, Stored(body_hash=digest, status=status, payload=payload))
    return JsonResponse(payload, status=status)


def _status_payload(req: InferenceRequest) -> dict:
    return {
        "request_id": str(req.pk),
        "status": req.api_status,
        "response": req.response if req.status == RequestStatus.COMPLETED else None,
        "reason_codes": req.reason_codes,
        "response_truncated": req.response_truncated if req.status == RequestStatus.COMPLETED else False,
        "failure_reason": req.failure_reason or None,
    }


@api_view("GET")
def status(request, request_id: str):
    """GET /safety/status/{id}: the owner's (or a privileged caller's) view of one request."""
    principal = authenticate(request)
    try:
        uid = uuid.UUID(request_id)
    except ValueError:
        return errors.error_response(errors.NOT_FOUND, errors.MSG_NOT_FOUND)
    req = selectors.request_for_principal(request_id=uid, principal=principal)
    if req is None:
        return errors.error_response(errors.NOT_FOUND, errors.MSG_NOT_FOUND)
    return JsonResponse(_status_payload(req))


@api_view("GET")
def queue_depth(request):
    """GET /safety/queue/depth: jobs waiting for a worker and escalations waiting per severity."""
    authenticate(request)
    inference = fast_redis().llen("rq:queue:inference")
    return JsonResponse({"inference": int(inference), "review": selectors.queue_depth_review()})


@api_view("POST")
def review(request):
    """POST /safety/review: an API decision, attributed to the authenticated caller."""
    from django.core.exceptions import ValidationError

    from review.models import Escalation
    from review.services import AlreadyDecided, TierNotAllowed, escalation_decide

    principal = authenticate(request)
    suspension = selectors.suspension_active(principal_id=principal.principal_id)
    if suspension is not None:
        return errors.error_response(errors.SUSPENDED, errors.MSG_SUSPENDED.format(until=suspension.until.isoformat()))
    if not tier_at_least(principal.tier, "verified"):
        return errors.error_response(errors.FORBIDDEN, errors.MSG_FORBIDDEN_TIER.format(tier="verified"))
    body = parse_review(read_json_object(request))
    try:
        uid = uuid.UUID(body.request_id)
    except ValueError:
        return errors.error_response(errors.NOT_FOUND, "No escalation for this request_id.")
    escalation = (
        Escalation.objects.filter(request_id=uid, status="pending").first()
        or Escalation.objects.filter(request_id=uid).order_by("-decided_at").first()
    )
    if escalation is None:
        return errors.error_response(errors.NOT_FOUND, "No escalation for this request_id.")
    if not tier_allows_severity(principal.tier, escalation.severity):
        return errors.error_response(
            errors.FORBIDDEN, errors.MSG_FORBIDDEN_SEVERITY.format(tier=principal.tier, severity=escalation.severity)
        )
    try:
        with transaction.atomic():
            escalation_decide(
                escalation_id=escalation.pk,
                decision=body.decision,
                tier=principal.tier,
                actor_label=principal.label,
                note=body.notes,
                reviewer_ref=body.reviewer_id,
            )
    except AlreadyDecided as exc:
        return errors.error_response(
            errors.ALREADY_DECIDED, errors.MSG_ALREADY_DECIDED.format(who=exc.who or "someone", decision=exc.decision)
        )
    except TierNotAllowed:
        return errors.error_response(
            errors.FORBIDDEN, errors.MSG_FORBIDDEN_SEVERITY.format(tier=principal.tier, severity=escalation.severity)
        )
    except ValidationError as exc:
        raise BadRequest(errors.INVALID_REQUEST, " ".join(exc.messages)) from None
    req = InferenceRequest.objects.get(pk=uid)
    return JsonResponse({"request_id": str(uid), "decision": body.decision, "status": req.api_status})
