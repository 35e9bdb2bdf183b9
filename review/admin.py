"""Escalations in the admin: browse and search only; decisions go through the console or the API."""

from django.contrib import admin

from review.models import Escalation


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin):
    list_display = ("id", "severity", "direction", "status", "created_at", "decided_by_label", "decided_at")
    list_filter = ("status", "severity", "direction")
    search_fields = ("=id", "=request__id", "decided_by_label")
    list_select_related = ()
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
