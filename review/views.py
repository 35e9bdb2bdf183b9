"""The review console (the review issue builds it out)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from review.models import Escalation


@login_required
def queue(request):
    items = (
        Escalation.objects.filter(status="pending")
        .select_related("request")
        .order_by("-severity_rank", "created_at")[:50]
    )
    return render(request, "review/queue.html", {"items": items})
