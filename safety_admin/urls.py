"""Top-level URLs."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from safety_admin import health
from safety_admin.admin_mixins import superuser_required
from safety_admin.gateway import openapi
from safety_admin.gateway import views as gateway

# django-rq's screens can empty queues and requeue jobs: administrators only (auditors are staff too).
RQ_PATTERNS = get_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=superuser_required)

urlpatterns = [
    path("safety/infer", gateway.infer, name="safety-infer"),
    path("safety/status/<str:request_id>", gateway.status, name="safety-status"),
    path("safety/queue/depth", gateway.queue_depth, name="safety-queue-depth"),
    path("safety/review", gateway.review, name="safety-review"),
    path("safety/openapi.json", openapi.openapi_view, name="safety-openapi"),
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path("metrics", health.metrics_view, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("ops/overview/", include("safety_admin.overview.urls")),
    path("policies/", include("safety_admin.policies.urls")),
    path("admin/rq/", include((RQ_PATTERNS, "django_rq"))),
    path("admin/", admin.site.urls),
    path("", include("review.urls")),
]

if settings.SAFETY_BENCH_BASELINE:
    from safety_admin.gateway.bench_views import baseline_infer, floor_infer

    urlpatterns.insert(0, path("bench/baseline-infer", baseline_infer))
    urlpatterns.insert(0, path("bench/floor-infer", floor_infer))

handler404 = "safety_admin.errors.not_found"
handler500 = "safety_admin.errors.server_error"
