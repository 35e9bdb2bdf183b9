from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "safety_admin.notifications"
    label = "notifications"
    verbose_name = "Notifications"
