from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.db.backends.signals import connection_created


def _allow_test_flush(sender, connection, **kwargs):
    # Django empties tables with TRUNCATE between transactional tests; the trigger lets that through
    # only for sessions that set this flag, and only the test suite sets it (docs/audit.md).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET audits.allow_truncate = 'on'")


def check_keys(app_configs, **kwargs):
    """The audit keys parse (production cannot start without them at all: settings.py refuses)."""
    from django.core.exceptions import ImproperlyConfigured

    from audits import signing
    from safety_admin import privacy

    errors = []
    for name, load in (("AUDIT_SIGNING_KEY", signing.private_key), ("PII_ENCRYPTION_KEY", privacy.pii_key)):
        if not getattr(settings, name):
            if settings.PRODUCTION:
                errors.append(checks.Error(f"{name} is not set", id="audits.E001"))
            continue
        try:
            load()
        except (ImproperlyConfigured, ValueError) as exc:
            errors.append(checks.Error(f"{name} is malformed: {exc}", id="audits.E002"))
    for position, raw in enumerate(settings.PII_ENCRYPTION_PREVIOUS_KEYS, start=1):
        try:
            privacy.decode_key_bytes(raw, length=32, error=privacy.BAD_KEY)
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(f"PII_ENCRYPTION_PREVIOUS_KEYS item {position} is malformed: {exc}",
                                       id="audits.E002"))  # fmt: skip
    return errors


class AuditsConfig(AppConfig):
    name = "audits"
    verbose_name = "Audit trail"

    def ready(self):
        from audits import signals  # noqa: F401 - connects the sign-in receivers

        checks.register(check_keys, checks.Tags.security)
        if settings.SAFETY_ENV == "test":
            connection_created.connect(_allow_test_flush, dispatch_uid="audits.allow_test_flush")
