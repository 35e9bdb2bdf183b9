"""deploy/: files parse, say what operators rely on, and pass the tools that can check them here."""

import json
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
# Every family /metrics exposes (test_metrics proves these names are served); suffixes come from the types.
SAFETY_METRICS = {
    "safety_requests_total", "safety_refusals_total", "safety_escalations_total", "safety_inference_outcomes_total",
    "safety_review_decisions_total", "safety_notifications_pending", "safety_redis_healthy",
    "safety_audit_db_healthy", "safety_queue_depth", "safety_rq_workers", "safety_reviews_pending",
    "safety_review_oldest_pending_seconds", "safety_reviews_overdue", "safety_notification_oldest_pending_seconds",
    "safety_notification_attempts_last_hour", "safety_notifications_failed_last_hour", "safety_state_scrape_seconds",
    "safety_detection_latency_seconds_bucket", "safety_detection_latency_seconds_count",
    "safety_detection_latency_seconds_sum", "safety_audit_chain_ok", "safety_audit_last_verified_timestamp_seconds",
    "safety_audit_last_checkpoint_timestamp_seconds", "safety_audit_unsigned_events",
}  # fmt: skip
REQUIRED_ALERTS = {
    "SafetyRedisUnhealthy", "SafetyDatabaseUnhealthy", "SafetyRefusalRateSpike", "SafetyReviewBacklog",
    "SafetyReviewSlaBreach", "SafetyQueueDepthHigh", "SafetyWorkerAbsent", "SafetyNotificationFailures",
    "SafetyAuditChainBroken", "SafetyAuditVerificationStale",
}  # fmt: skip


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> dict[tuple[str, str], dict]:
    docs = [doc for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml" for doc in load_all(p)]
    assert all({"apiVersion", "kind", "metadata"} <= set(doc) for doc in docs)
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bsafety_[a-z_]+", expr))


def test_every_yaml_and_json_file_parses():
    yaml_files = sorted(DEPLOY.rglob("*.yaml"))
    assert [p.relative_to(DEPLOY).as_posix() for p in yaml_files] == [
        "compose.yaml", "k8s/configmap.yaml", "k8s/cronjobs.yaml", "k8s/kustomization.yaml", "k8s/migrate-job.yaml",
        "k8s/secret.example.yaml", "k8s/web-deployment.yaml", "k8s/web-pdb.yaml", "k8s/web-service.yaml",
        "k8s/worker-deployment.yaml", "prometheus/alerts.test.yaml", "prometheus/alerts.yaml",
    ]  # fmt: skip
    for path in yaml_files:
        assert all(isinstance(doc, dict) for doc in load_all(path)), path
    assert json.loads((DEPLOY / "grafana/dashboard.json").read_text())["uid"] == "safety-admin"


def test_kustomization_lists_every_manifest_but_the_secret_example():
    listed = set(load_all(K8S / "kustomization.yaml")[0]["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk


def test_cronjobs_schedule_the_audit_commands_with_the_workers_config():
    objects = k8s_objects()
    worker = objects[("Deployment", "safety-admin-worker")]["spec"]["template"]["spec"]
    crons = {name: doc for (kind, name), doc in objects.items() if kind == "CronJob"}
    commands = {}
    for name, cron in crons.items():
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        commands[name] = (cron["spec"]["schedule"], container["args"])
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # a slow verification never overlaps the next one
        assert container["envFrom"] == worker["containers"][0]["envFrom"]
        assert pod["securityContext"] == worker["securityContext"]

    assert commands == {
        "safety-admin-audit-checkpoint": ("*/5 * * * *", ["python", "manage.py", "audit_checkpoint"]),
        "safety-admin-verify-audit-chain": ("17 3 * * *", ["python", "manage.py", "verify_audit_chain"]),
        "safety-admin-purge-content": ("47 3 * * *", ["python", "manage.py", "purge_content"]),
    }
    # The entry point runs any other command as given (deploy/entrypoint.sh), so these reach manage.py.
    assert 'exec "$role" "$@"' in (DEPLOY / "entrypoint.sh").read_text()


def test_web_deployment_has_replicas_probes_and_graceful_shutdown():
    web = k8s_objects()[("Deployment", "safety-admin-web")]
    pod = web["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert web["spec"]["replicas"] == 3
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert (container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]) == (
        "/ready",
        "/health",
    )
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    graceful = {e["name"]: e["value"] for e in container["env"]}["GUNICORN_GRACEFUL_TIMEOUT"]
    assert pod["terminationGracePeriodSeconds"] > 5 + int(graceful)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["envFrom"] == [
        {"configMapRef": {"name": "safety-admin-config"}},
        {"secretRef": {"name": "safety-admin-secrets"}},
    ]


def test_worker_deployment_and_migrate_job_use_the_same_config():
    objects = k8s_objects()
    worker = objects[("Deployment", "safety-admin-worker")]
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    (job_container,) = objects[("Job", "safety-admin-migrate")]["spec"]["template"]["spec"]["containers"]

    assert container["args"] == ["worker", "inference", "notifications", "default"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 120  # INFERENCE_JOB_TIMEOUT
    assert job_container["args"] == ["migrate"]
    assert container["envFrom"] == job_container["envFrom"]
    assert set(objects[("ConfigMap", "safety-admin-config")]["data"]) >= {"SAFETY_ENV", "REDIS_URL", "SAFETY_LOG_JSON"}


def test_compose_has_postgres_redis_aof_migrate_once_web_and_two_workers():
    compose = load_all(DEPLOY / "compose.yaml")[0]
    services = compose["services"]

    assert set(services) == {"postgres", "redis", "migrate", "web", "worker"}
    assert services["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]
    assert (services["migrate"]["command"], services["migrate"]["restart"]) == (["migrate"], "no")
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["web"]["environment"]["SAFETY_ENV"] == "production"


def test_dockerfile_is_slim_non_root_collects_static_and_runs_gunicorn():
    text = (DEPLOY / "Dockerfile").read_text()
    entry = (DEPLOY / "entrypoint.sh").read_text()

    assert re.findall(r"^FROM (\S+)", text, flags=re.M) == ["python:3.11-slim-bookworm", "python:3.11-slim-bookworm"]
    assert re.findall(r"^USER (\S+)", text, flags=re.M) == ["10001:10001"]
    assert "manage.py collectstatic --noinput" in text
    assert "exec gunicorn -c gunicorn.conf.py safety_admin.wsgi:application" in entry
    assert subprocess.run(["sh", "-n", str(DEPLOY / "entrypoint.sh")], check=False).returncode == 0


def test_alert_rules_cover_the_issue_and_use_only_exported_metrics():
    groups = load_all(DEPLOY / "prometheus/alerts.yaml")[0]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    used = set().union(*(metric_names(rule["expr"]) for rule in rules))

    assert REQUIRED_ALERTS - {rule["alert"] for rule in rules} == set()
    assert used - SAFETY_METRICS == set()
    assert all(rule["labels"]["severity"] in {"page", "ticket"} for rule in rules)


def test_dashboard_queries_use_only_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana/dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set().union(*(metric_names(e) for e in exprs))

    assert used - SAFETY_METRICS == set()
    assert {"safety_refusals_total", "safety_queue_depth", "safety_reviews_pending"} - used == set()
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package: prometheus)")
def test_promtool_checks_and_unit_tests_the_alert_rules():
    check = subprocess.run(["promtool", "check", "rules", "alerts.yaml"], cwd=DEPLOY / "prometheus",
                           capture_output=True, text=True, check=False)  # fmt: skip
    unit = subprocess.run(["promtool", "test", "rules", "alerts.test.yaml"], cwd=DEPLOY / "prometheus",
                          capture_output=True, text=True, check=False)  # fmt: skip

    assert (check.returncode, check.stdout + check.stderr) == (0, "Checking alerts.yaml\n  SUCCESS: 16 rules found\n\n")
    assert unit.returncode == 0, unit.stdout + unit.stderr


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0


def production_env(**extra: str) -> dict[str, str]:
    """The documented production variables (README "Operating it"), with fresh random secrets."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "SAFETY_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "safety.example.org",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://safety.example.org",
        "DATABASE_URL": "postgres://safety:pw@127.0.0.1:5432/safety",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PSEUDONYM_KEY": secrets.token_urlsafe(32),
        "AUDIT_SIGNING_KEY": secrets.token_hex(32),
        "PII_ENCRYPTION_KEY": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        **extra,
    }


@pytest.mark.skipif(not _compose_available(), reason="docker compose is not installed on this machine")
def test_docker_compose_config_accepts_the_file():
    result = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                            env=production_env(), capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "System check identified no issues (0 silenced).\n",
        "",
    )


def test_production_refuses_to_start_without_its_keys():
    env = production_env()
    del env["PSEUDONYM_KEY"]
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "PSEUDONYM_KEY must be set when SAFETY_ENV=production" in result.stderr


def test_readme_operator_section_documents_every_variable_the_deploy_files_set():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Operating it") :]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", section))
    compose = load_all(DEPLOY / "compose.yaml")[0]
    deployed = set(compose["x-app"]["environment"])
    objects = k8s_objects()
    deployed |= set(objects[("ConfigMap", "safety-admin-config")]["data"])
    deployed |= set(objects[("Secret", "safety-admin-secrets")]["stringData"])
    # DESIGN.md §6: the original deployment guide's names.
    guide = {"REDIS_URL", "DATABASE_URL", "MODEL_API_URL", "MODEL_API_KEY", "SAFETY_JWT_SECRET", "SAFETY_API_KEYS",
             "SLACK_WEBHOOK", "PAGERDUTY_ROUTING_KEY", "SAFETY_ENV", "SAFETY_LOG_JSON", "SAFETY_LOG_LEVEL",
             "PRIVILEGED_RATE_LIMIT"}  # fmt: skip

    assert (deployed | guide) - documented == set()
    for heading in ("### Scaling workers", "### Backups", "### Rotating the JWT secret", "### Rotating the audit"):
        assert heading in section


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_image_build_step_collects_static_files_with_production_settings(tmp_path):
    # Replays the Dockerfile's collectstatic RUN with the image's ENV (no docker daemon here); only
    # STATIC_ROOT moves to a temporary directory, so a newly required production key breaks this test too.
    steps = dockerfile_instructions()
    image_env = dict(
        pair.split("=", 1) for args in [a for i, a in steps if i == "ENV"][-1:] for pair in shlex.split(args)
    )
    (run,) = [args for instr, args in steps if instr == "RUN" and "collectstatic" in args]
    words = shlex.split(run)
    build_env = dict(word.split("=", 1) for word in words[: words.index("python")])
    (tmp_path / "build_settings.py").write_text(
        f"from safety_admin.settings import *  # noqa: F403\nSTATIC_ROOT = {str(tmp_path / 'static')!r}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{ROOT}:{tmp_path}", **image_env,
           **build_env, "DJANGO_SETTINGS_MODULE": "build_settings"}  # fmt: skip

    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip

    assert (result.returncode, result.stderr) == (0, "")
    assert image_env["SAFETY_ENV"] == "production"
    assert (tmp_path / "static/overview/overview.css").is_file()
    assert (tmp_path / "static/overview/overview.css.gz").is_file()
