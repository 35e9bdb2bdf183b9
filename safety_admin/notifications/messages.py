"""What the notifications say: Slack blocks and PagerDuty events, rendered from the escalation at send time.

Rendering at send time means a message delayed by an outage still shows the current state (and age).
User content appears only in Slack, only as a short, flattened, escaped excerpt of the prompt, and not at
all when ``SLACK_INCLUDE_EXCERPT`` is off; PagerDuty never gets any.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

PD_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
DECISION_WORD = {"approved": "Approved", "blocked": "Blocked"}
SEVERITY_EMOJI = {"critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_circle:",
                  "low": ":white_circle:"}  # fmt: skip


def escalation_url(escalation_id: int) -> str:
    """The detail screen; the review app's URL name when it exists, else the documented path."""
    try:
        path = reverse("review:escalation-detail", args=[escalation_id])
    except NoReverseMatch:
        path = f"/escalations/{escalation_id}/"
    return f"{settings.SITE_URL}{path}"


def pagerduty_dedup_key(escalation_id: int) -> str:
    return f"escalation-{escalation_id}"


def slack_escape(text: str) -> str:
    """Slack's three control characters; with them escaped no mention, link or channel ping can be formed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def excerpt(text: str, limit: int) -> str:
    """Whitespace collapsed, cut to ``limit`` characters (with an ellipsis), then escaped for Slack."""
    flat = " ".join((text or "").split())
    if len(flat) > limit:
        flat = flat[: max(0, limit - 1)].rstrip() + "…"
    return slack_escape(flat)


def _age(created_at) -> str:
    seconds = max(0, int((timezone.now() - created_at).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _decision_line(escalation) -> str:
    word = DECISION_WORD.get(escalation.status)
    if not word:
        return ""
    who = slack_escape(escalation.decided_by_label or "a reviewer")
    when = escalation.decided_at.strftime("%Y-%m-%d %H:%M UTC") if escalation.decided_at else ""
    icon = ":white_check_mark:" if escalation.status == "approved" else ":no_entry:"
    return f"{icon} *{word}* by {who}" + (f" at {when}" if when else "")


def slack_message(escalation) -> tuple[str, list[dict]]:
    """``(fallback text, blocks)`` for an escalation in its current state."""
    codes = ", ".join(escalation.reason_codes) or "none"
    url = escalation_url(escalation.pk)
    epoch = int(escalation.created_at.timestamp())
    age = _age(escalation.created_at)
    title = f"{escalation.severity.upper()} escalation #{escalation.pk} ({escalation.direction})"
    decision = _decision_line(escalation)
    text = f"{title}: {codes}" + (f" — {DECISION_WORD[escalation.status].lower()}" if decision else "")
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn",
                                     "text": f"{SEVERITY_EMOJI.get(escalation.severity, '')} *{title}*"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Severity*\n{escalation.severity}"},
            {"type": "mrkdwn", "text": f"*Reason codes*\n{codes}"},
            {"type": "mrkdwn", "text": f"*Age*\n<!date^{epoch}^{{ago}}|{age}>"},
            {"type": "mrkdwn", "text": f"*Status*\n{escalation.status}"},
        ]},
    ]  # fmt: skip
    if settings.SLACK_INCLUDE_EXCERPT:
        snippet = excerpt(escalation.request.user_input, settings.SLACK_EXCERPT_CHARS)
        if snippet:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"> {snippet}", "verbatim": True}})
    if decision:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": decision}})
    blocks.append({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Open escalation"}, "url": url},
    ]})  # fmt: skip
    return text, blocks


def slack_decision_followup(escalation) -> tuple[str, list[dict]]:
    """The webhook path cannot edit its first message, so a decision is a short second message."""
    url = escalation_url(escalation.pk)
    line = _decision_line(escalation)
    text = f"Escalation #{escalation.pk} {escalation.status} by {escalation.decided_by_label or 'a reviewer'}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"Escalation <{url}|#{escalation.pk}>: {line}"}}]
    return text, blocks


def pagerduty_event(escalation, *, action: str) -> dict:
    """An Events API v2 ``trigger`` or ``resolve`` for the escalation (no user content)."""
    event = {
        "routing_key": settings.PAGERDUTY_ROUTING_KEY,
        "event_action": action,
        "dedup_key": pagerduty_dedup_key(escalation.pk),
    }
    if action != "trigger":
        return event
    url = escalation_url(escalation.pk)
    codes = ", ".join(escalation.reason_codes) or "none"
    event["payload"] = {
        "summary": f"Safety escalation #{escalation.pk}: {escalation.severity} {codes} ({escalation.direction})"[:1024],
        "source": urlsplit(settings.SITE_URL).hostname or "safety-admin",
        "severity": PD_SEVERITY.get(escalation.severity, "warning"),
        "timestamp": escalation.created_at.isoformat(),
        "component": "review",
        "group": escalation.direction,
        "class": escalation.reason_codes[0] if escalation.reason_codes else "UNCLASSIFIED_REVIEW",
        "custom_details": {
            "escalation_id": escalation.pk,
            "request_id": str(escalation.request_id),
            "severity": escalation.severity,
            "reason_codes": list(escalation.reason_codes),
            "direction": escalation.direction,
            "due_at": escalation.due_at.isoformat() if escalation.due_at else None,
            "url": url,
        },
    }
    event["links"] = [{"href": url, "text": f"Open escalation #{escalation.pk}"}]
    event["client"] = "Safety Admin"
    event["client_url"] = url
    return event
