"""Liveness, readiness and the metrics endpoint."""

import hmac
import os

import prometheus_client
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess

from safety_admin import metrics
from safety_admin.redis_conn import fast_redis


@require_GET
def health(request):
    """The process is alive (no dependency checks)."""
    return JsonResponse({"status": "ok"})


def _multiprocess() -> bool:
    # The same test django_prometheus.exports.ExportToDjangoView makes.
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


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
    """Prometheus text; requires ``Authorization: Bearer $METRICS_TOKEN`` when that is set.

    django_prometheus's ExportToDjangoView builds a fresh registry with only the MultiProcessCollector
    in multiprocess mode, which would drop the scrape-time state gauges; this view emits both: the
    process metrics (all processes' files, or this process's registry) and then the state collector.
    """
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = "Bearer"
            return response
    # Health gauges are refreshed on every scrape, so alerts do not depend on someone calling /ready.
    db_ok, redis_ok = _check_db() is None, _check_redis() is None
    metrics.AUDIT_DB_HEALTHY.set(1 if db_ok else 0)
    metrics.REDIS_HEALTHY.set(1 if redis_ok else 0)
    if _multiprocess():
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(
        metrics.state_registry(redis_ok=redis_ok, db_ok=db_ok)
    )
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)


PROBES = {"/health": health, "/ready": ready, "/metrics": metrics_view}


class ProbeMiddleware:
    """Answers /health, /ready and /metrics before host validation, the HTTPS redirect and sessions.

    Kubelets, Docker health checks and Prometheus call pods by IP over plain HTTP: with
    ``ALLOWED_HOSTS`` set to the public name and ``SECURE_SSL_REDIRECT`` on, they would get 400
    or 301 instead of an answer. Nothing behind these paths needs a session or the host name.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = PROBES.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
