from django.contrib import admin, messages

from safety_admin.gateway.models import ApiKey, Suspension
from safety_admin.gateway.services import api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "tier", "profile", "created_at", "last_used_at", "revoked_at")
    list_filter = ("tier", "profile")
    search_fields = ("name", "prefix")
    readonly_fields = (
        "name",
        "prefix",
        "key_hash",
        "tier",
        "created_at",
        "created_by_label",
        "revoked_at",
        "last_used_at",
    )
    actions = ["revoke"]

    def has_add_permission(self, request):
        # Keys are created with `manage.py create_api_key` so the raw key is shown once, in a terminal.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(key=key, actor=request.user)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


@admin.register(Suspension)
class SuspensionAdmin(admin.ModelAdmin):
    list_display = ("principal_pseudonym", "until", "reason", "created_by_label", "created_at", "lifted_at")
    search_fields = ("principal_pseudonym", "reason")
    readonly_fields = [f.name for f in Suspension._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
