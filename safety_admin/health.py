"""Liveness, readiness and the metrics endpoint."""

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

from safety_admin import metrics
from safety_admin.redis_conn import fast_redis


@require_GET
def health(request):
    """The process is alive (no dependency checks)."""
    return JsonResponse({"status": "ok"})


def _check_db() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return None
    except Exception as exc:  # any driver error means "not ready"
        return type(exc).__name__


def _check_redis() -> str | None:
    try:
        fast_redis().ping()
        return None
    except Exception as exc:
        return type(exc).__name__


@require_GET
def ready(request):
    """200 when the database and Redis both answer within their short timeouts; 503 naming what failed."""
    db_error, redis_error = _check_db(), _check_redis()
    metrics.AUDIT_DB_HEALTHY.set(0 if db_error else 1)
    metrics.REDIS_HEALTHY.set(0 if redis_error else 1)
    body = {
        "status": "ok" if not (db_error or redis_error) else "unavailable",
        "database": "ok" if not db_error else f"unreachable ({db_error})",
        "redis": "ok" if not redis_error else f"unreachable ({redis_error})",
    }
    if db_error or redis_error:
        failing = [name for name, err in (("database", db_error), ("redis", redis_error)) if err]
        body["detail"] = f"{' and '.join(failing)} not answering; requests are refused until it returns."
        return JsonResponse(body, status=503)
    return JsonResponse(body)


@require_GET
def metrics_view(request):
    """Prometheus text; requires ``Authorization: Bearer $METRICS_TOKEN`` when that is set."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = "Bearer"
            return response
    return ExportToDjangoView(request)
