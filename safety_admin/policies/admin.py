"""Django admin for lists, entries and profiles (writes go through the services, so they are audited);
versions are read-only. The custom screens under /policies/ do diff, preview, publish and rollback."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from safety_admin.admin_mixins import ReadOnlyAdminMixin
from safety_admin.policies import services
from safety_admin.policies.forms import EntryAdminForm
from safety_admin.policies.models import Blocklist, BlocklistEntry, PolicyProfile, PolicyVersion
from safety_admin.policies.profiles import validate_config

ENTRY_FIELDS = ("pattern", "match_type", "reason_code", "severity", "action", "direction", "window", "note")


@admin.register(Blocklist)
class BlocklistAdmin(admin.ModelAdmin):
    list_display = ("name", "builtin", "enabled", "description", "created_at")
    list_filter = ("builtin", "enabled")
    search_fields = ("name", "description")
    fields = ("name", "description", "enabled", "builtin", "pack")
    readonly_fields = ("enabled", "builtin", "pack")
    actions = ("enable_lists", "disable_lists")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "name", "description") if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing is editable here: enable/disable are actions, a rename is a new list
        created = services.blocklist_create(actor=request.user, name=obj.name, description=obj.description)
        obj.pk = created.pk

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: published versions refer to lists by name

    def _set(self, request, queryset, enabled: bool):
        for blocklist in queryset:
            services.blocklist_set_enabled(actor=request.user, blocklist_id=blocklist.pk, enabled=enabled)
        self.message_user(request, f"{queryset.count()} list(s) {'enabled' if enabled else 'disabled'} in the draft.")

    @admin.action(description="Enable in the draft")
    def enable_lists(self, request, queryset):
        self._set(request, queryset, True)

    @admin.action(description="Disable in the draft")
    def disable_lists(self, request, queryset):
        self._set(request, queryset, False)


@admin.register(BlocklistEntry)
class BlocklistEntryAdmin(admin.ModelAdmin):
    form = EntryAdminForm
    list_display = (
        "pattern",
        "blocklist",
        "match_type",
        "reason_code",
        "severity",
        "action",
        "direction",
        "added_by_label",
        "created_at",
    )
    list_filter = ("blocklist", "match_type", "reason_code", "severity", "action", "direction")
    search_fields = ("pattern", "note")
    list_select_related = ("blocklist",)
    list_per_page = 100
    show_full_result_count = False  # lists can hold a million entries

    def save_model(self, request, obj, form, change):
        try:
            if change:
                services.entry_update(
                    actor=request.user, entry_id=obj.pk, **{f: form.cleaned_data[f] for f in ENTRY_FIELDS}
                )
            else:
                created = services.entry_create(
                    actor=request.user, blocklist_id=obj.blocklist_id, **{f: form.cleaned_data[f] for f in ENTRY_FIELDS}
                )
                obj.pk = created.pk
        except services.PolicyError as exc:
            messages.error(request, str(exc))
            raise PermissionDenied(str(exc)) from None

    def delete_model(self, request, obj):
        services.entry_delete(actor=request.user, entry_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.entry_delete(actor=request.user, entry_id=pk)


class ProfileForm(forms.ModelForm):
    class Meta:
        model = PolicyProfile
        fields = ["name", "description", "config"]

    def clean_config(self):
        try:
            return validate_config(self.cleaned_data["config"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(PolicyProfile)
class PolicyProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ("name", "description", "updated_at")
    search_fields = ("name",)

    def save_model(self, request, obj, form, change):
        saved = services.profile_save(
            actor=request.user, name=obj.name, description=obj.description, config=form.cleaned_data["config"]
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.profile_delete(actor=request.user, profile_id=obj.pk)

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            services.profile_delete(actor=request.user, profile_id=pk)


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Published versions never change; publish and roll back from the Policies screens."""

    list_display = ("number", "is_active", "created_at", "created_by_label", "note", "entry_count")
    fields = (
        "number",
        "is_active",
        "created_at",
        "activated_at",
        "created_by_label",
        "note",
        "entry_count",
        "diff_pretty",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("snapshot")

    @admin.display(description="Change log")
    def diff_pretty(self, obj):
        return json.dumps(obj.diff, indent=2)
