"""Policy screens for staff: draft diff, preview, publish, versions and rollback, import, proposals."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from redis.exceptions import RedisError

from review.models import BlocklistProposal
from safety_admin.policies import forms, runtime, selectors, services
from safety_admin.policies.models import Blocklist
from safety_admin.policies.preview import draft_preview

MSG_PUBLISHED = "Published v{number}."
MSG_NOT_ANNOUNCED = "Redis is unreachable: processes switch when it answers again (new processes load v{number})."
MSG_ROLLED_BACK = "v{number} is active again."
MSG_IMPORTED = "Imported {count} entries into {name}."
MSG_LIST_TOGGLED = "{name} is now {state}."
ENTRIES_PER_PAGE = 100
# Changing policy needs the permission, not just staff status: auditors are staff and must change nothing.
policy_change_required = permission_required("policies.change_blocklist", raise_exception=True)


def _acks() -> list[dict]:
    try:
        return sorted(runtime.process_acks(), key=lambda a: a["process"])
    except (RedisError, OSError):
        return []


@staff_member_required
def dashboard(request):
    """The draft against the active version, the lists, and which version each process runs.

    Shipped packs get their (read-only) list rows the first time this page is shown, so they can be disabled.
    """
    if set(runtime.load_packs()) - set(Blocklist.objects.filter(builtin=True).values_list("pack", flat=True)):
        services.blocklist_sync_builtin(actor=request.user)
    active = selectors.version_active()
    diff = selectors.snapshot_diff(selectors.version_snapshot(active), selectors.draft_snapshot())
    return render(
        request,
        "policies/dashboard.html",
        {
            "active": active,
            "diff": diff,
            "draft_empty": selectors.diff_is_empty(diff),
            "lists": selectors.blocklist_list(),
            "acks": _acks(),
            "packs": runtime.load_packs(),
            "proposal_count": selectors.proposal_list_pending().count(),
        },
    )


@staff_member_required
def blocklist_detail(request, pk: int):
    """One list's entries (read-only here; shipped packs come from the code)."""
    blocklist = get_object_or_404(Blocklist, pk=pk)
    if blocklist.builtin:
        rows = [
            {
                "rule_id": r.rule_id,
                "pattern": r.pattern,
                "match_type": r.match_type,
                "reason_code": r.reason_code,
                "severity": r.severity,
                "action": r.action,
                "direction": r.direction,
            }
            for r in runtime.load_packs().get(blocklist.pack, [])
        ]
    else:
        rows = blocklist.entries.order_by("id")
    page = Paginator(rows, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "policies/blocklist_detail.html", {"blocklist": blocklist, "page": page})


@staff_member_required
@policy_change_required
@require_POST
def blocklist_toggle(request, pk: int):
    blocklist = get_object_or_404(Blocklist, pk=pk)
    blocklist = services.blocklist_set_enabled(
        actor=request.user, blocklist_id=blocklist.pk, enabled=not blocklist.enabled
    )
    state = "enabled" if blocklist.enabled else "disabled"
    messages.info(request, MSG_LIST_TOGGLED.format(name=blocklist.name, state=f"{state} in the draft"))
    return redirect("policies:dashboard")


@staff_member_required
def preview(request):
    """What publishing the draft would change on recent traffic and on the labelled corpus."""
    return render(request, "policies/preview.html", {"preview": draft_preview()})


@staff_member_required
@policy_change_required
@require_http_methods(["GET", "POST"])
def publish(request):
    """GET: the change log to be and a note; POST: publish (asks again when many requests would be refused)."""
    active = selectors.version_active()
    diff = selectors.snapshot_diff(selectors.version_snapshot(active), selectors.draft_snapshot())
    form = forms.PublishForm(request.POST or None)
    impact = None
    if request.method == "POST" and form.is_valid():
        try:
            version = services.policy_publish(
                actor=request.user, note=form.cleaned_data["note"], confirm_impact=form.cleaned_data["confirm_impact"]
            )
        except services.ImpactConfirmationRequired as exc:
            impact = exc
            form.add_error(None, str(exc))
        except services.PolicyError as exc:
            form.add_error(None, str(exc))
        else:
            messages.info(request, MSG_PUBLISHED.format(number=version.number))
            if version.announced is False:
                messages.warning(request, MSG_NOT_ANNOUNCED.format(number=version.number))
            return redirect("policies:version-detail", number=version.number)
    return render(
        request,
        "policies/publish.html",
        {"form": form, "diff": diff, "active": active, "impact": impact, "draft_empty": selectors.diff_is_empty(diff)},
    )


@staff_member_required
def version_list(request):
    versions = selectors.version_list().select_related("created_by")
    return render(request, "policies/version_list.html", {"versions": versions, "acks": _acks()})


@staff_member_required
def version_detail(request, number: int):
    version = get_object_or_404(selectors.version_list(), number=number)
    return render(request, "policies/version_detail.html", {"version": version, "diff": version.diff})


@staff_member_required
@policy_change_required
@require_http_methods(["GET", "POST"])
def version_rollback(request, number: int):
    """GET: confirm; POST: make this version active again."""
    version = get_object_or_404(selectors.version_list(), number=number)
    form = forms.RollbackForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = services.policy_rollback(actor=request.user, to=number, note=form.cleaned_data["note"])
        except services.PolicyError as exc:
            form.add_error(None, str(exc))
        else:
            messages.info(request, MSG_ROLLED_BACK.format(number=version.number))
            if version.announced is False:
                messages.warning(request, MSG_NOT_ANNOUNCED.format(number=version.number))
            return redirect("policies:version-list")
    return render(
        request, "policies/rollback.html", {"version": version, "form": form, "active": selectors.version_active()}
    )


@staff_member_required
@policy_change_required
@require_http_methods(["GET", "POST"])
def import_file(request):
    """Upload a term list or CSV into a draft list; invalid lines are listed with their numbers."""
    form = forms.ImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            report = services.blocklist_import(
                actor=request.user,
                list_name=data["list_name"],
                data=data["file"].read(),
                filename=data["file"].name,
                reason_code=data["reason_code"],
                severity=data["severity"],
                action=data["action"],
                match_type=data["match_type"],
                direction=data["direction"],
                skip_invalid=data["skip_invalid"],
            )
        except services.PolicyError as exc:
            form.add_error("list_name", str(exc))
        else:
            if report.imported or not report.errors:
                messages.info(request, MSG_IMPORTED.format(count=report.imported, name=data["list_name"]))
            if not report.errors:
                return redirect("policies:dashboard")
    return render(
        request,
        "policies/import.html",
        {"form": form, "report": report, "invalid_message": services.MSG_IMPORT_INVALID},
    )


@staff_member_required
def proposal_list(request):
    return render(
        request,
        "policies/proposals.html",
        {
            "proposals": selectors.proposal_list_pending(),
            "accept_form": forms.ProposalAcceptForm(),
        },
    )


def _proposal_or_404(pk: int) -> BlocklistProposal:
    return get_object_or_404(BlocklistProposal, pk=pk)


@staff_member_required
@policy_change_required
@require_POST
def proposal_accept(request, pk: int):
    """Accept: the proposed text becomes a draft entry of the chosen list."""
    proposal = _proposal_or_404(pk)
    form = forms.ProposalAcceptForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an editable list, a match type and an action.")
        return redirect("policies:proposal-list")
    try:
        entry = services.proposal_accept(
            actor=request.user,
            proposal_id=proposal.pk,
            blocklist_id=form.cleaned_data["blocklist"].pk,
            match_type=form.cleaned_data["match_type"],
            action=form.cleaned_data["action"],
        )
    except services.PolicyError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Added to {entry.blocklist.name} in the draft; publish to apply.")
    return redirect("policies:proposal-list")


@staff_member_required
@policy_change_required
@require_POST
def proposal_reject(request, pk: int):
    proposal = _proposal_or_404(pk)
    form = forms.ProposalRejectForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.proposal_reject(actor=request.user, proposal_id=proposal.pk, reason=reason)
    except services.PolicyError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Proposal {proposal.pk} rejected.")
    return redirect("policies:proposal-list")
