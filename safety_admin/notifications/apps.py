from django.apps import AppConfig
from django.core import checks


class NotificationsConfig(AppConfig):
    name = "safety_admin.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        checks.register(check_notification_settings, checks.Tags.compatibility)


SEVERITIES = ("low", "medium", "high", "critical")


def check_notification_settings(app_configs=None, **kwargs):
    """A misspelt minimum severity would silently mute alerts; refuse it at start-up instead."""
    from django.conf import settings

    errors = []
    for name in ("SLACK_MIN_SEVERITY", "PAGERDUTY_MIN_SEVERITY"):
        value = getattr(settings, name)
        if value not in SEVERITIES:
            errors.append(checks.Error(f"{name} must be one of {', '.join(SEVERITIES)}, got {value!r}",
                                       id="notifications.E001"))  # fmt: skip
    if settings.SLACK_BOT_TOKEN and not settings.SLACK_CHANNEL:
        errors.append(checks.Warning("SLACK_BOT_TOKEN is set without SLACK_CHANNEL; the bot path is off",
                                     id="notifications.W001"))  # fmt: skip
    return errors
