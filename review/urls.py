from django.urls import path

from review import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("review/counts/", views.queue_counts, name="queue-counts"),
    path("review/next/", views.claim_next, name="claim-next"),
    path("review/stats/", views.stats, name="stats"),
    # Row links in the queue are built from this prefix (one reverse() per page, not three per row).
    path("review/escalations/", views.queue, name="escalations"),
    path("review/escalations/<int:escalation_id>/", views.escalation_detail, name="escalation-detail"),
    path("review/escalations/<int:escalation_id>/claim/", views.escalation_claim, name="escalation-claim"),
    path("review/escalations/<int:escalation_id>/release/", views.escalation_release, name="escalation-release"),
    path("review/escalations/<int:escalation_id>/decide/", views.escalation_decide, name="escalation-decide"),
]
