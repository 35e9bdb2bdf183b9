"""The review console: queue, claim, detail, decide, stats. Thin views over review.selectors/services."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from review import selectors, services
from review.forms import DecideForm, QueueFilterForm
from review.models import EscalationStatus
from safety_admin.accounts.models import Tier, tier_at_least
from safety_admin.detectors import REASON_CODES

MSG_ALREADY_DECIDED = "Already decided by {who}: {decision}."
MSG_CLAIMED_BY_OTHER = "{who} is working on this escalation; it returns to the queue when their claim expires."
MSG_CLAIMED = "Claimed until {until:%H:%M} UTC."
MSG_RELEASED = "Claim released."
MSG_NOTHING_WAITING = "Nothing is waiting for your tier."
MSG_DECIDED = "Escalation {pk} {status}."
MSG_BAD_FILTER = "Unknown filter value; showing nothing until it is fixed."
MSG_TIER_REQUIRED = "The review console needs the verified tier or higher."


def reviewer_required(view):
    """Signed in (else login redirect) and at least the verified tier (else 403)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not tier_at_least(request.user.tier, Tier.VERIFIED):
            raise PermissionDenied(MSG_TIER_REQUIRED)
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@reviewer_required
def queue(request):
    form = QueueFilterForm(request.GET)
    if not form.is_valid():
        counts = selectors.queue_counts(tier=request.user.tier)
        ctx = {
            "form": form,
            "items": [],
            "counts": counts,
            "error": MSG_BAD_FILTER,
            "count_cap": selectors.QUEUE_COUNT_CAP,
        }
        return render(request, "review/queue.html", ctx, status=400)
    filters = {k: v for k, v in form.cleaned_data.items() if k != "after" and v}
    page = selectors.escalation_queue(tier=request.user.tier, filters=filters, after=form.cleaned_data["after"])
    query = request.GET.copy()
    query.pop("after", None)
    ctx = {"form": form, "items": page.items, "counts": page.counts, "next_cursor": page.next_cursor,
           "filter_query": query.urlencode(), "is_first_page": not form.cleaned_data["after"],
           "count_cap": selectors.QUEUE_COUNT_CAP, "base": reverse("review:escalations")}  # fmt: skip
    return render(request, "review/queue.html", ctx)


@require_GET
@reviewer_required
def queue_counts(request):
    """The per-severity counts partial that htmx refreshes in place."""
    ctx = {"counts": selectors.queue_counts(tier=request.user.tier), "count_cap": selectors.QUEUE_COUNT_CAP}
    return render(request, "review/includes/counts.html", ctx)


@require_POST
@reviewer_required
def claim_next(request):
    escalation = services.escalation_claim_next(actor=request.user, tier=request.user.tier)
    if escalation is None:
        messages.info(request, MSG_NOTHING_WAITING)
        return redirect("review:queue")
    return redirect("review:escalation-detail", escalation_id=escalation.pk)


def _detail_context(request, escalation, form=None) -> dict:
    hits = selectors.escalation_hits(escalation)
    req = escalation.request

    def by_field(name):
        return [hit for hit in hits if hit.get("field") == name]

    now = timezone.now()
    return {
        "e": escalation,
        "req": req,
        "hits": hits,
        "user_input": selectors.highlight_segments(req.user_input, by_field("user_input")),
        "system_prompt": selectors.highlight_segments(req.system_prompt, by_field("system_prompt")),
        "response": selectors.highlight_segments(req.response, by_field("response")),
        "requester": selectors.requester_summary(pseudonym=req.principal_pseudonym),
        "earlier": selectors.earlier_decisions_same_rule(escalation=escalation),
        "history": selectors.escalation_history(escalation=escalation),
        "sla": selectors.sla_state(escalation, now),
        "claim_live": bool(
            escalation.claimed_by_id and escalation.claim_expires_at and escalation.claim_expires_at > now
        ),
        "claimed_by_me": escalation.claimed_by_id == request.user.pk,
        "pending": escalation.status == EscalationStatus.PENDING,
        "can_suspend": request.user.tier == Tier.PRIVILEGED,
        "note_required_for_approve": escalation.severity in {"high", "critical"},
        "form": form or DecideForm(),
        "reason_codes": REASON_CODES,
    }


def _render_detail(request, escalation, *, status=200, error="", form=None):
    ctx = _detail_context(request, escalation, form)
    ctx["error"] = error
    return render(request, "review/detail.html", ctx, status=status)


@require_GET
@reviewer_required
def escalation_detail(request, escalation_id: int):
    escalation = selectors.escalation_get_for_reviewer(escalation_id=escalation_id, tier=request.user.tier)
    return _render_detail(request, escalation)


def _conflict(request, escalation_id, exc):
    escalation = selectors.escalation_get_for_reviewer(escalation_id=escalation_id, tier=request.user.tier)
    if isinstance(exc, services.AlreadyDecided):
        message = MSG_ALREADY_DECIDED.format(who=exc.who or "someone", decision=exc.decision)
    else:
        message = MSG_CLAIMED_BY_OTHER.format(who=exc.who)
    return _render_detail(request, escalation, status=409, error=message)


@require_POST
@reviewer_required
def escalation_claim(request, escalation_id: int):
    selectors.escalation_get_for_reviewer(escalation_id=escalation_id, tier=request.user.tier)
    try:
        escalation = services.escalation_claim(escalation_id=escalation_id, actor=request.user, tier=request.user.tier)
    except (services.AlreadyDecided, services.ClaimedByOther) as exc:
        return _conflict(request, escalation_id, exc)
    messages.success(request, MSG_CLAIMED.format(until=escalation.claim_expires_at))
    return redirect("review:escalation-detail", escalation_id=escalation_id)


@require_POST
@reviewer_required
def escalation_release(request, escalation_id: int):
    selectors.escalation_get_for_reviewer(escalation_id=escalation_id, tier=request.user.tier)
    try:
        services.escalation_release(escalation_id=escalation_id, actor=request.user)
    except services.ClaimedByOther as exc:
        return _conflict(request, escalation_id, exc)
    messages.success(request, MSG_RELEASED)
    return redirect("review:queue")


@require_POST
@reviewer_required
def escalation_decide(request, escalation_id: int):
    escalation = selectors.escalation_get_for_reviewer(escalation_id=escalation_id, tier=request.user.tier)
    form = DecideForm(request.POST)
    if not form.is_valid():
        error = " ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        return _render_detail(request, escalation, status=400, error=error, form=form)
    try:
        decided = services.escalation_decide(escalation_id=escalation_id, tier=request.user.tier, actor=request.user,
                                             actor_label=request.user.username, **form.service_kwargs())  # fmt: skip
    except (services.AlreadyDecided, services.ClaimedByOther) as exc:
        return _conflict(request, escalation_id, exc)
    except services.TierNotAllowed:
        raise PermissionDenied(MSG_TIER_REQUIRED) from None
    except ValidationError as exc:
        return _render_detail(request, escalation, status=400, error=" ".join(exc.messages), form=form)
    messages.success(request, MSG_DECIDED.format(pk=decided.pk, status=decided.status))
    return redirect("review:queue")


@require_GET
@login_required
def stats(request):
    """Reviewer stats for privileged reviewers and staff."""
    if not (request.user.is_staff or request.user.tier == Tier.PRIVILEGED):
        raise PermissionDenied("Stats are for privileged reviewers and staff.")
    return render(request, "review/stats.html", {"stats": selectors.reviewer_stats()})
