"""Read-only outbox and delivery log in the admin, with a "retry now" action that goes through the service."""

from django.contrib import admin, messages

from safety_admin.admin_mixins import ReadOnlyAdminMixin
from safety_admin.notifications.models import DeliveryAttempt, Notification
from safety_admin.notifications.services import notification_retry_now

RETRIED = "Queued {n} notification(s) for another attempt."
NOTHING_RETRIED = "Nothing to retry: delivered notifications and ones being sent right now are left alone."


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "finished_at", "outcome", "http_status", "detail", "retry_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "escalation_id", "channel", "kind", "status", "attempts", "next_attempt_at",
                    "delivered_at", "last_error")  # fmt: skip
    list_filter = ("status", "channel", "kind")
    search_fields = ("=id", "=escalation__id", "external_ref")
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_retry_permission(self, request):
        # The outbox is never edited by hand; retrying is what "change" permission allows.
        return request.user.has_perm("notifications.change_notification")

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request, queryset):
        count = notification_retry_now(notification_ids=list(queryset.values_list("pk", flat=True)),
                                       actor=request.user, actor_label=request.user.get_username())  # fmt: skip
        if count:
            self.message_user(request, RETRIED.format(n=count), messages.SUCCESS)
        else:
            self.message_user(request, NOTHING_RETRIED, messages.WARNING)
