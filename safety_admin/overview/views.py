"""The staff overview: how much is refused and escalated, what waits, and whether reviews meet their SLA."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from safety_admin.overview import charts, selectors

STAFF_ONLY = "The overview is for staff."
DECISION_COLOURS = {"approved": "series-2", "blocked": "series-5"}


@require_GET
@login_required
def index(request):
    if not request.user.is_staff:
        raise PermissionDenied(STAFF_ONLY)
    window = selectors.WINDOWS.get(request.GET.get("window", ""), selectors.WINDOWS[selectors.DEFAULT_WINDOW])
    now = timezone.now()
    refusals = charts.stacked_bars(*selectors.refusals_over_time(window=window, now=now), unit=window.unit)
    escalations = charts.stacked_bars(*selectors.escalations_over_time(window=window, now=now), unit=window.unit)
    decisions = charts.stacked_bars(
        *selectors.decisions_over_time(window=window, now=now), unit=window.unit, palette=DECISION_COLOURS
    )
    depths = selectors.queue_depths()
    sla = selectors.review_sla(window=window, now=now)
    context = {
        "window": window,
        "windows": selectors.WINDOWS.values(),
        "refusals": refusals,
        "escalations": escalations,
        "decisions": decisions,
        "queues": charts.horizontal_bars([(name, n, "series-0") for name, n in depths.items()]),
        "redis_down": all(v is None for v in depths.values()),
        "pending": charts.horizontal_bars([(row.severity, row.pending, f"ov-sev-{row.severity}") for row in sla]),
        "sla": sla,
    }
    return render(request, "overview/index.html", context)
