from django.contrib import admin

from safety_admin.admin_mixins import ReadOnlyAdminMixin
from safety_admin.inference.models import InferenceRequest


@admin.register(InferenceRequest)
class InferenceRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "status", "principal_pseudonym", "principal_tier", "severity", "created_at", "attempts")
    list_filter = ("status", "principal_tier", "severity")
    search_fields = ("=id", "=principal_pseudonym", "=trace_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in InferenceRequest._meta.fields if f.name != "principal_id"]
    exclude = ("principal_id",)
