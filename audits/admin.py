"""The auditors' screen: browse and search the trail; nobody can add, change or delete anything here."""

import json
import re

from django.contrib import admin
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audits.models import AuditCheckpoint, AuditEvent
from audits.services import audit_identity_reveal, user_is_privileged_staff
from safety_admin.admin_mixins import ReadOnlyAdminMixin

_TICKET = re.compile(r"^audit-[0-9a-f]{20}$")
_EVENT_FIELDS = ("seq", "ticket_id", "created_at", "action", "actor", "actor_label", "subject_type", "subject_id",
                 "subject_repr", "request_id", "trace_id", "principal_pseudonym", "data_pretty", "prev_hash",
                 "hash")  # fmt: skip


class _DistinctValuesFilter(admin.SimpleListFilter):
    """Filter choices from DISTINCT over the column, cached for a few minutes: a million events stay cheap."""

    field = ""

    def lookups(self, request, model_admin):
        key = f"audits:filter:{self.field}"
        values = cache.get(key)
        if values is None:
            values = list(AuditEvent.objects.order_by(self.field).values_list(self.field, flat=True).distinct()[:500])
            cache.set(key, values, 300)
        return [(value, value or "(none)") for value in values]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.field: value})


class ActionFilter(_DistinctValuesFilter):
    title, parameter_name, field = "action", "action", "action"


class ActorFilter(_DistinctValuesFilter):
    title, parameter_name, field = "actor", "actor", "actor_label"


class SubjectTypeFilter(_DistinctValuesFilter):
    title, parameter_name, field = "subject type", "subject_type", "subject_type"


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    actions = None


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "action", "actor_label", "subject_type", "subject_repr", "ticket_id")
    list_filter = (ActionFilter, ActorFilter, SubjectTypeFilter)
    date_hierarchy = "created_at"
    search_fields = ("ticket_id", "request_id", "actor_label")
    search_help_text = "Support ticket id (audit-…), request id, trace id, subject id or actor name"
    fields = _EVENT_FIELDS
    readonly_fields = _EVENT_FIELDS
    list_per_page = 50
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        # Exact, indexed look-ups for ids; a substring match only for actor names.
        term = search_term.strip()
        if not term:
            return queryset, False
        if _TICKET.match(term):
            return queryset.filter(ticket_id=term), False
        from django.db.models import Q

        query = Q(request_id=term) | Q(trace_id=term) | Q(subject_id=term) | Q(actor_label__icontains=term)
        if term.isdigit():
            query |= Q(seq=int(term))
        return queryset.filter(query), False

    @admin.display(description="data")
    def data_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))

    def get_urls(self):
        reveal = self.admin_site.admin_view(self.reveal_view)
        return [path("<int:object_id>/reveal/", reveal, name="audits_auditevent_reveal"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_reveal": user_is_privileged_staff(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def reveal_view(self, request, object_id):
        """GET: ask for the legal basis; POST: reveal (privileged staff only, audited) and show the identity."""
        if not user_is_privileged_staff(request.user):
            raise PermissionDenied
        event = get_object_or_404(AuditEvent, pk=object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "event": event,
            "title": "Reveal identity",
            "back": reverse("admin:audits_auditevent_change", args=[event.pk]),
        }
        if request.method == "POST":
            try:
                context["identity"] = audit_identity_reveal(
                    event=event, actor=request.user, reason=request.POST.get("reason", "")
                )
            except ValidationError as exc:
                context["error"] = " ".join(exc.messages)
        return TemplateResponse(request, "admin/audits/auditevent/reveal.html", context)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "head_hash", "public_key")
    date_hierarchy = "created_at"
    fields = readonly_fields = ("seq", "created_at", "head_hash", "public_key", "signature")
    show_full_result_count = False
