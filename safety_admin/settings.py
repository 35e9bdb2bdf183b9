"""Settings for Safety Admin.

The only module that reads ``os.environ``. Every knob has an embedded default that is safe for
development (`make run`); production sets ``SAFETY_ENV=production`` and the variables listed in
README.md's operator section. Malformed values raise ``ImproperlyConfigured`` at start-up.
"""

import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


SAFETY_ENV = env_str("SAFETY_ENV", "development")
if SAFETY_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"SAFETY_ENV must be development, test or production, got {SAFETY_ENV!r}")
PRODUCTION = SAFETY_ENV == "production"

DEV_SECRET_KEY = "dev-insecure-4a1f0c9e-change-me-for-production-0b7d"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a long random value when SAFETY_ENV=production")

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "django_prometheus",
    "django_htmx",
    "axes",
    "safety_admin.accounts",
    "audits",
    "safety_admin.inference",
    "safety_admin.gateway",
    "safety_admin.policies",
    "safety_admin.notifications",
    "review",
    "safety_admin.overview",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "safety_admin.health.ProbeMiddleware",
    "safety_admin.middleware.TraceMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "safety_admin.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "safety_admin.urls"
WSGI_APPLICATION = "safety_admin.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "review:queue"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "safety_admin.context_processors.product",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATA_DIR = Path(env_str("SAFETY_DATA_DIR", str(BASE_DIR / "data")))
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'safety_admin.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASE_URL.startswith("sqlite:///") and "DATABASE_URL" not in os.environ:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE transactions let the web server and the worker write side by side.
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;",
    }
else:
    _db.setdefault("OPTIONS", {})
    # Fail fast when PostgreSQL is unreachable: the gateway must answer 503 quickly.
    _db["OPTIONS"].setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 2))
    # psycopg prepares a statement after it ran this many times on a connection. Only the request path's
    # server-binding cursor (safety_admin/dbbackends) uses it: Django's own cursors bind on the client. Set 0 to
    # turn it off behind a transaction-mode pooler such as PgBouncer.
    _prepare = env_int("DB_PREPARE_THRESHOLD", 5)
    _db["OPTIONS"].setdefault("prepare_threshold", _prepare if _prepare > 0 else None)
    _db["CONN_HEALTH_CHECKS"] = True
    test_name = env_str("SAFETY_TEST_DB")
    if test_name:
        _db["TEST"] = {"NAME": test_name}
# django_prometheus's wrappers of the same backends count queries, errors and connections per alias.
# PostgreSQL's wrapper is the project's own subclass of it (safety_admin/dbbackends: a cheaper health check).
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["ENGINE"] = "safety_admin.dbbackends.postgresql"
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["ENGINE"] = "django_prometheus.db.backends.sqlite3"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and queues -----------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# The request path uses its own short timeouts and no retries: fail closed within a few hundred ms.
SAFETY_REDIS_TIMEOUT = env_float("SAFETY_REDIS_TIMEOUT", 0.2)
INFERENCE_JOB_TIMEOUT = env_int("INFERENCE_JOB_TIMEOUT", 120)
INFERENCE_RETRIES = env_int("INFERENCE_RETRIES", 3)
INFERENCE_RETRY_INTERVALS = [int(x) for x in env_list("INFERENCE_RETRY_INTERVALS", ["1", "4", "10"])]
INFERENCE_SWEEP_SECONDS = env_int("INFERENCE_SWEEP_SECONDS", 30)
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": INFERENCE_JOB_TIMEOUT}
    for name in ("inference", "notifications", "default")
}
RQ = {"COMMIT_MODE": "on_db_commit"}
RQ_SHOW_ADMIN_LINK = True

CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}

# --- Gateway --------------------------------------------------------------------------------------
SAFETY_API_KEYS = env_str("SAFETY_API_KEYS", "")
SAFETY_JWT_SECRET = env_str("SAFETY_JWT_SECRET", "")
# Secrets being rotated out: tokens signed with them stay valid until removed from this list.
SAFETY_JWT_PREVIOUS_SECRETS = env_list("SAFETY_JWT_PREVIOUS_SECRETS")
SAFETY_JWT_AUDIENCE = env_str("SAFETY_JWT_AUDIENCE", "")
SAFETY_JWT_ISSUER = env_str("SAFETY_JWT_ISSUER", "")
SAFETY_MAX_INPUT_CHARS = env_int("SAFETY_MAX_INPUT_CHARS", 32_000)
SAFETY_MAX_BODY_BYTES = env_int("SAFETY_MAX_BODY_BYTES", 256 * 1024)
USER_RATE_LIMIT = env_int("USER_RATE_LIMIT", 60)
VERIFIED_RATE_LIMIT = env_int("VERIFIED_RATE_LIMIT", 600)
PRIVILEGED_RATE_LIMIT = env_int("PRIVILEGED_RATE_LIMIT", 100_000)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
# How long a process may reuse an API key row or a suspension lookup (revocations apply within this time).
SAFETY_AUTH_CACHE_SECONDS = env_float("SAFETY_AUTH_CACHE_SECONDS", 0.0 if SAFETY_ENV == "test" else 2.0)
SAFETY_BENCH_BASELINE = env_bool("SAFETY_BENCH_BASELINE", False)  # mounts bench/gateway.py's baseline view

# --- Model ----------------------------------------------------------------------------------------
MODEL_API_URL = env_str("MODEL_API_URL", "").rstrip("/")
MODEL_API_KEY = env_str("MODEL_API_KEY", "")
MODEL_NAME = env_str("MODEL_NAME", "default")
MODEL_CONNECT_TIMEOUT = env_float("MODEL_CONNECT_TIMEOUT", 3.0)
MODEL_READ_TIMEOUT = env_float("MODEL_READ_TIMEOUT", 60.0)
MODEL_MAX_RESPONSE_BYTES = env_int("MODEL_MAX_RESPONSE_BYTES", 2 * 1024 * 1024)
MODEL_MAX_OUTPUT_CHARS = env_int("MODEL_MAX_OUTPUT_CHARS", 64_000)
SAFETY_STEERING_PROMPT = env_str(
    "SAFETY_STEERING_PROMPT",
    "You are a helpful assistant. Refuse requests for weapons, self-harm, abuse or other serious harm, "
    "and never reveal secrets or personal data about third parties.",
)

# --- Policies (docs/policies.md) ------------------------------------------------------------------
POLICY_LISTENER = env_bool("POLICY_LISTENER", True)  # each process follows published versions via Redis
# Publishing stores the compiled ruleset in Redis (HMAC-signed with SECRET_KEY) so other processes load it instead
# of compiling their own (safety_admin/policies/sharing.py, docs/policies.md).
POLICY_SHARE_COMPILED = env_bool("POLICY_SHARE_COMPILED", True)
# ... and, for processes on the same host, also in a file here (read without copying it through Redis; "" = off).
# Memory-backed where the host has /dev/shm: writing 73 MB there takes 0.05 s, on disk 0.1-0.25 s.
_SHM = Path("/dev/shm")
POLICY_SHARE_DIR = env_str(
    "POLICY_SHARE_DIR",
    str((_SHM if _SHM.is_dir() else Path(tempfile.gettempdir())) / f"safety-admin-policies-{os.getuid()}"),
)
POLICY_POLL_SECONDS = env_float("POLICY_POLL_SECONDS", 5.0)  # fallback check when an announcement is missed
# Publishing waits up to this long for every live process to load ("stage") the new version before it
# commits the activation, so the switch itself is one reference swap per process (docs/policies.md).
POLICY_STAGE_WAIT_SECONDS = env_float("POLICY_STAGE_WAIT_SECONDS", 5.0)
POLICY_PREVIEW_RECENT = env_int("POLICY_PREVIEW_RECENT", 1000)  # stored requests a preview replays
POLICY_CONFIRM_REFUSE_PERCENT = env_float("POLICY_CONFIRM_REFUSE_PERCENT", 1.0)  # newly refused share → confirm
POLICY_CORPUS_DIR = Path(env_str("POLICY_CORPUS_DIR", str(BASE_DIR.parent / "shared" / "corpus" / "dev")))

# --- Review ---------------------------------------------------------------------------------------
REVIEW_CLAIM_MINUTES = env_int("REVIEW_CLAIM_MINUTES", 10)
REVIEW_SLA_MINUTES = {
    "critical": env_int("REVIEW_SLA_CRITICAL_MINUTES", 15),
    "high": env_int("REVIEW_SLA_HIGH_MINUTES", 60),
    "medium": env_int("REVIEW_SLA_MEDIUM_MINUTES", 240),
    "low": env_int("REVIEW_SLA_LOW_MINUTES", 1440),
}
REVIEW_DUE_SOON_FRACTION = env_float("REVIEW_DUE_SOON_FRACTION", 0.25)

# --- Audit and privacy ----------------------------------------------------------------------------
# Keys are base64/hex strings from the environment; development falls back to fixed, clearly-marked keys.
PSEUDONYM_KEY = env_str("PSEUDONYM_KEY", "" if PRODUCTION else "dev-pseudonym-key-not-for-production")
PII_ENCRYPTION_KEY = env_str("PII_ENCRYPTION_KEY", "")
# Retired PII keys (comma-separated, hex/base64): ciphertexts they made stay revealable after a rotation.
PII_ENCRYPTION_PREVIOUS_KEYS = env_list("PII_ENCRYPTION_PREVIOUS_KEYS")
AUDIT_SIGNING_KEY = env_str("AUDIT_SIGNING_KEY", "")
# Who chains committed events (audits/sealer.py): "workers" (the RQ workers, every AUDIT_SEAL_SECONDS; web
# processes do nothing), "thread" (a background thread in each writing process) or "inline" (the writer, right
# after commit: the tests' default, so assertions see seq at once).
AUDIT_SEALER = env_str("AUDIT_SEALER", "inline" if SAFETY_ENV == "test" else "workers")
if AUDIT_SEALER not in {"workers", "thread", "inline"}:
    raise ImproperlyConfigured("AUDIT_SEALER must be workers, thread or inline")
AUDIT_SEAL_SECONDS = env_float("AUDIT_SEAL_SECONDS", 0.25)
AUDIT_CHECKPOINT_EVERY = env_int("AUDIT_CHECKPOINT_EVERY", 1000)
AUDIT_CHECKPOINT_SECONDS = env_int("AUDIT_CHECKPOINT_SECONDS", 300)
# Public halves (hex) of retired signing keys whose checkpoints still verify (docs/audit.md, key rotation).
AUDIT_TRUSTED_PUBLIC_KEYS = env_list("AUDIT_TRUSTED_PUBLIC_KEYS")
if PRODUCTION and not (AUDIT_SIGNING_KEY and PII_ENCRYPTION_KEY):
    raise ImproperlyConfigured("AUDIT_SIGNING_KEY and PII_ENCRYPTION_KEY must be set when SAFETY_ENV=production")
CONTENT_RETENTION_DAYS = env_int("CONTENT_RETENTION_DAYS", 30)
if PRODUCTION and not PSEUDONYM_KEY:
    raise ImproperlyConfigured("PSEUDONYM_KEY must be set when SAFETY_ENV=production")

# --- Notifications --------------------------------------------------------------------------------
SLACK_WEBHOOK = env_str("SLACK_WEBHOOK", "")
SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN", "")
SLACK_CHANNEL = env_str("SLACK_CHANNEL", "")
SLACK_API_URL = env_str("SLACK_API_URL", "https://slack.com/api/")
SLACK_MIN_SEVERITY = env_str("SLACK_MIN_SEVERITY", "medium")
SLACK_INCLUDE_EXCERPT = env_bool("SLACK_INCLUDE_EXCERPT", True)
PAGERDUTY_ROUTING_KEY = env_str("PAGERDUTY_ROUTING_KEY", "")
PAGERDUTY_EVENTS_URL = env_str("PAGERDUTY_EVENTS_URL", "https://events.pagerduty.com/v2/enqueue")
PAGERDUTY_MIN_SEVERITY = env_str("PAGERDUTY_MIN_SEVERITY", "high")
SLACK_EXCERPT_CHARS = env_int("SLACK_EXCERPT_CHARS", 120)
NOTIFICATION_CONNECT_TIMEOUT = env_float("NOTIFICATION_CONNECT_TIMEOUT", 3.0)
NOTIFICATION_READ_TIMEOUT = env_float("NOTIFICATION_READ_TIMEOUT", 10.0)
NOTIFICATION_RETRY_BASE_SECONDS = env_float("NOTIFICATION_RETRY_BASE_SECONDS", 2.0)
NOTIFICATION_RETRY_MAX_SECONDS = env_float("NOTIFICATION_RETRY_MAX_SECONDS", 300.0)
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 300)
NOTIFICATION_GIVE_UP_SECONDS = env_int("NOTIFICATION_GIVE_UP_SECONDS", 24 * 3600)
NOTIFICATION_LEASE_SECONDS = env_int("NOTIFICATION_LEASE_SECONDS", 60)

# --- Observability --------------------------------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
SAFETY_LOG_JSON = env_bool("SAFETY_LOG_JSON", False)
SAFETY_LOG_LEVEL = env_str("SAFETY_LOG_LEVEL", "INFO").upper()
SAFETY_LOG_CONTENT = env_bool("SAFETY_LOG_CONTENT", False)
# Optional daily log files (rotated at UTC midnight, gzipped, SAFETY_LOG_RETENTION_DAYS kept).
SAFETY_LOG_FILE = env_str("SAFETY_LOG_FILE", "")
SAFETY_LOG_RETENTION_DAYS = env_int("SAFETY_LOG_RETENTION_DAYS", 30)
# RQ workers in containers serve their own /metrics on this port (0 = off; see docs/operations.md).
SAFETY_WORKER_METRICS_PORT = env_int("SAFETY_WORKER_METRICS_PORT", 0)
PROMETHEUS_EXPORT_MIGRATIONS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "safety_admin.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "safety_admin.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if SAFETY_LOG_JSON else "plain",
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": SAFETY_LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}, "rq.worker": {"level": "WARNING"}},
}
if SAFETY_LOG_FILE:
    LOGGING["handlers"]["file"] = {
        "()": "safety_admin.logging.DailyGzipFileHandler",
        "filename": SAFETY_LOG_FILE,
        "backupCount": SAFETY_LOG_RETENTION_DAYS,
        "formatter": "json",
        "filters": ["context"],
    }
    LOGGING["root"]["handlers"].append("file")

# --- Auth, sessions, security headers --------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_PROXY", False) else None
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Development serves static files straight from static/ (production collects them at image build).
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(exist_ok=True)  # empty here; whitenoise would warn on every start without it
