"""/health and /ready: alive, ready, and 503 naming the part that does not answer."""

import pytest

from tests.ops.conftest import free_port, http

pytestmark = pytest.mark.django_db


def test_health_is_ok_without_touching_dependencies(client, settings, django_assert_num_queries):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with django_assert_num_queries(0):
        response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_when_database_and_redis_answer(client):
    response = client.get("/ready")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok", "redis": "ok"})


def test_ready_is_503_naming_redis_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    response = client.get("/ready")

    assert (response.status_code, response.json()) == (
        503,
        {
            "status": "unavailable",
            "database": "ok",
            "redis": "unreachable (ConnectionError)",
            "detail": "redis not answering; requests are refused until it returns.",
        },
    )


@pytest.mark.django_db(transaction=True)
def test_ready_is_503_naming_the_database_when_postgres_is_unreachable(start_gunicorn):
    # A real server whose DATABASE_URL points at a closed port: the process starts, /health answers, /ready does not.
    web = start_gunicorn(workers=1, DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere")

    reply = http(f"{web.url}/ready")
    metrics = http(f"{web.url}/metrics").body.decode()

    assert reply.status == 503
    assert reply.json() == {
        "status": "unavailable",
        "database": "unreachable (OperationalError)",
        "redis": "ok",
        "detail": "database not answering; requests are refused until it returns.",
    }
    assert "safety_audit_db_healthy 0.0" in metrics.splitlines()
    # The database parts of the scrape are left out, the Redis ones are still there.
    assert "# TYPE safety_reviews_pending gauge" not in metrics.splitlines()
    assert 'safety_queue_depth{queue="inference"} 0.0' in metrics.splitlines()
    assert http(f"{web.url}/health").status == 200


def test_ready_and_health_are_get_only(client):
    assert client.post("/ready").status_code == 405
    assert client.post("/health").status_code == 405


def test_probes_answer_by_pod_ip_over_http_in_production_settings(client, settings):
    # Kubelets and Prometheus call http://<pod ip>:8000/ready: no host validation, no HTTPS redirect for probes.
    settings.ALLOWED_HOSTS = ["safety.example.org"]
    settings.SECURE_SSL_REDIRECT = True

    probes = [client.get(path, HTTP_HOST="10.1.2.3:8000").status_code for path in ("/health", "/ready", "/metrics")]
    other = client.get("/safety/openapi.json", HTTP_HOST="10.1.2.3:8000")
    redirected = client.get("/safety/openapi.json", HTTP_HOST="safety.example.org")

    assert probes == [200, 200, 200]
    assert other.status_code == 400
    assert (redirected.status_code, redirected["Location"]) == (301, "https://safety.example.org/safety/openapi.json")
