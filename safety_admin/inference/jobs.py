"""RQ jobs of the "inference" queue. They take ids, fetch, and call services."""

import logging
import time

from rq import get_current_job

from safety_admin import context, metrics
from safety_admin.detectors import check
from safety_admin.inference import services
from safety_admin.inference.client import ModelError, model_complete
from safety_admin.inference.models import InferenceRequest, RequestStatus
from safety_admin.policies.runtime import active_ruleset, steering_prompt

log = logging.getLogger(__name__)


class ModelRetry(Exception):
    """Raised to let RQ retry the job later (a transient model error with retries left)."""


def _retries_left() -> int:
    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0


def _messages(req: InferenceRequest) -> list[dict]:
    messages = [{"role": "system", "content": steering_prompt(req.profile, metadata=req.metadata)}]
    if req.system_prompt:
        messages.append({"role": "system", "content": req.system_prompt})
    messages.append({"role": "user", "content": req.user_input})
    return messages


def inference_run(request_id: str, trace_id: str = "") -> str | None:
    """Call the model for one pending request, post-check the answer, and record the outcome."""
    token = context.bind(trace_id=trace_id, request_id=str(request_id))
    try:
        req = InferenceRequest.objects.filter(pk=request_id).first()
        if req is None or req.status != RequestStatus.PENDING:
            log.info("nothing to do", extra={"event": "inference.skip", "status": getattr(req, "status", None)})
            return None
        context.bind(user=req.principal_pseudonym)
        if not services.inference_mark_started(request_id):
            return None
        try:
            answer = model_complete(_messages(req), model=req.model_name)
        except ModelError as exc:
            if exc.transient and _retries_left() > 0:
                log.warning("model call failed, will retry", extra={"event": "inference.retry", "reason": exc.reason})
                raise ModelRetry(exc.reason) from None
            services.inference_fail(request_id=request_id, reason=exc.reason)
            log.warning("model call failed", extra={"event": "inference.failed", "reason": exc.reason})
            return RequestStatus.FAILED
        started = time.perf_counter()
        verdict = check(answer.text, "output", active_ruleset(req.profile, metadata=req.metadata))
        metrics.DETECTION_LATENCY.labels(direction="output").observe(time.perf_counter() - started)
        status = services.inference_finish(
            request_id=request_id, text=answer.text, truncated=answer.truncated, verdict=verdict, model=answer.model
        )
        log.info("inference finished", extra={"event": "inference.finished", "status": status,
                                               "reason_code": verdict.primary_reason_code})  # fmt: skip
        return status
    finally:
        context.reset(token)


def inference_sweep_job() -> dict[str, int]:
    """Periodic sweep, also callable as a job."""
    return services.inference_sweep()
