"""Every write to policies: draft edits, imports, profiles, publish, rollback, proposals.

Each service writes its audit event in the same transaction; publish and rollback have every live process load
the new version before the transaction commits ("staging", bounded) and announce it as active (Redis) only after
the commit.
"""

import functools
import logging
import re
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from audits.services import audit_event_record
from safety_admin.detectors import check
from safety_admin.inference.models import InferenceRequest
from safety_admin.policies import runtime, selectors
from safety_admin.policies.models import Blocklist, BlocklistEntry, PolicyProfile, PolicyVersion
from safety_admin.policies.preview import states_preview
from safety_admin.policies.profiles import validate_config
from safety_admin.policies.validation import (
    ImportReport,
    InvalidEntry,
    dedupe_key,
    parse_blocklist,
    validate_entry,
)

log = logging.getLogger(__name__)

MSG_BUILTIN_READ_ONLY = "built-in list {name} is read-only; disable it instead"
MSG_NOTHING_TO_PUBLISH = "the draft has no changes against the active version"
MSG_NO_VERSION = "no version {number}"
MSG_NO_PREVIOUS = "there is no version before the active one"
MSG_ALREADY_ACTIVE = "version {number} is already active"
MSG_NOTE_REQUIRED = "a note saying why is required"
MSG_IMPACT = (
    "this draft would newly refuse {percent:.1f}% of the last {total} requests (threshold {threshold}%); "
    "confirm to publish anyway"
)
MSG_IMPORT_INVALID = "{count} invalid line(s); nothing imported"
MSG_DUPLICATE_ENTRY = "already in list {name}"
MSG_LIST_EXISTS = "a list named {name} already exists"


class PolicyError(ValueError):
    """A policy change that cannot be made; ``str()`` is shown to the admin."""


class ImpactConfirmationRequired(PolicyError):
    def __init__(self, percent: float, total: int, preview):
        super().__init__(
            MSG_IMPACT.format(percent=percent, total=total, threshold=settings.POLICY_CONFIRM_REFUSE_PERCENT)
        )
        self.percent, self.total, self.preview = percent, total, preview


def _gc_paused(func):
    """Run ``func`` with the cyclic garbage collector paused (see ``runtime.gc_paused``): imports and publishes
    handle 100k-entry lists, snapshots and rulesets, and collections walking them made those ~40 % slower."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with runtime.gc_paused():
            return func(*args, **kwargs)

    return wrapper


def _label(actor, actor_label: str) -> str:
    return actor_label or getattr(actor, "username", "") or "system"


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


def _entry_dict(entry: BlocklistEntry) -> dict:
    return {
        f: getattr(entry, f)
        for f in ("pattern", "match_type", "reason_code", "severity", "action", "direction", "window", "note")
    }


def _audit(action: str, actor, actor_label: str, subject, **data):
    return audit_event_record(
        action=action,
        actor=_user(actor),
        actor_label=_label(actor, actor_label),
        subject_type=f"policies.{type(subject).__name__.lower()}",
        subject_id=str(subject.pk),
        subject_repr=str(subject),
        data=data,
    )


# --- lists ------------------------------------------------------------------------------------------------------
@transaction.atomic
def blocklist_sync_builtin(*, actor=None, actor_label: str = "system") -> list[Blocklist]:
    """Make sure every shipped pack has its read-only list row. Side effects: new rows, one audit event each."""
    created = []
    existing = set(Blocklist.objects.filter(builtin=True).values_list("pack", flat=True))
    for pack in sorted(runtime.load_packs()):
        if pack in existing:
            continue
        blocklist = Blocklist(
            name=runtime.builtin_list_name(pack),
            builtin=True,
            pack=pack,
            description=f"Shipped detector pack {pack!r} (read-only)",
            created_by_label="system",
        )
        blocklist.full_clean()
        blocklist.save()
        _audit("policies.blocklist.builtin_registered", actor, actor_label, blocklist, pack=pack)
        created.append(blocklist)
    return created


@transaction.atomic
def blocklist_create(*, actor=None, actor_label: str = "", name: str, description: str = "") -> Blocklist:
    """A new, empty, editable list in the draft. Side effects: row, audit ``policies.blocklist.created``."""
    if Blocklist.objects.filter(name=name).exists():
        raise PolicyError(MSG_LIST_EXISTS.format(name=name))
    blocklist = Blocklist(name=name, description=description, created_by_label=_label(actor, actor_label))
    blocklist.full_clean()
    blocklist.save()
    _audit("policies.blocklist.created", actor, actor_label, blocklist, name=name)
    return blocklist


@transaction.atomic
def blocklist_set_enabled(*, actor=None, actor_label: str = "", blocklist_id: int, enabled: bool) -> Blocklist:
    """Turn a list (built-in or not) on or off in the draft.

    Side effects: audit ``policies.blocklist.enabled``/``.disabled``."""
    blocklist = Blocklist.objects.select_for_update().get(pk=blocklist_id)
    if blocklist.enabled != enabled:
        blocklist.enabled = enabled
        blocklist.save(update_fields=["enabled"])
        _audit(f"policies.blocklist.{'enabled' if enabled else 'disabled'}", actor, actor_label, blocklist)
    return blocklist


def _editable(blocklist: Blocklist) -> Blocklist:
    if blocklist.builtin:
        raise PolicyError(MSG_BUILTIN_READ_ONLY.format(name=blocklist.name))
    return blocklist


def _existing_keys(blocklist: Blocklist, *, exclude_id: int | None = None) -> dict[tuple, str]:
    rows = BlocklistEntry.objects.filter(blocklist=blocklist).exclude(pk=exclude_id)
    return {dedupe_key(p, m, d): blocklist.name for p, m, d in rows.values_list("pattern", "match_type", "direction")}


# --- entries ----------------------------------------------------------------------------------------------------
@transaction.atomic
def entry_create(
    *,
    actor=None,
    actor_label: str = "",
    blocklist_id: int,
    pattern: str,
    reason_code: str,
    match_type: str = "word",
    severity: str = "medium",
    action: str = "review",
    direction: str = "prompt",
    window: int = 8,
    note: str = "",
) -> BlocklistEntry:
    """Add an entry to an editable list in the draft. Side effects: row, audit ``policies.entry.created``."""
    blocklist = _editable(Blocklist.objects.get(pk=blocklist_id))
    try:
        pattern = validate_entry(
            pattern=pattern,
            match_type=match_type,
            reason_code=reason_code,
            severity=severity,
            action=action,
            direction=direction,
        )
    except InvalidEntry as exc:
        raise PolicyError(str(exc)) from None
    if dedupe_key(pattern, match_type, direction) in _existing_keys(blocklist):
        raise PolicyError(MSG_DUPLICATE_ENTRY.format(name=blocklist.name))
    entry = BlocklistEntry(
        blocklist=blocklist,
        pattern=pattern,
        match_type=match_type,
        reason_code=reason_code,
        severity=severity,
        action=action,
        direction=direction,
        window=window,
        note=note,
        added_by=_user(actor),
        added_by_label=_label(actor, actor_label),
    )
    entry.full_clean()
    entry.save()
    _audit("policies.entry.created", actor, actor_label, entry, blocklist=blocklist.name, after=_entry_dict(entry))
    return entry


@transaction.atomic
def entry_update(*, actor=None, actor_label: str = "", entry_id: int, **changes) -> BlocklistEntry:
    """Edit an entry of an editable list. Side effects: audit ``policies.entry.updated`` with before/after."""
    entry = BlocklistEntry.objects.select_for_update().select_related("blocklist").get(pk=entry_id)
    _editable(entry.blocklist)
    before = _entry_dict(entry)
    unknown = set(changes) - set(before)
    if unknown:
        raise PolicyError(f"unknown fields: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(entry, name, value)
    try:
        entry.pattern = validate_entry(
            pattern=entry.pattern,
            match_type=entry.match_type,
            reason_code=entry.reason_code,
            severity=entry.severity,
            action=entry.action,
            direction=entry.direction,
        )
    except InvalidEntry as exc:
        raise PolicyError(str(exc)) from None
    if dedupe_key(entry.pattern, entry.match_type, entry.direction) in _existing_keys(
        entry.blocklist, exclude_id=entry.pk
    ):
        raise PolicyError(MSG_DUPLICATE_ENTRY.format(name=entry.blocklist.name))
    entry.full_clean()
    entry.save()
    _audit(
        "policies.entry.updated",
        actor,
        actor_label,
        entry,
        blocklist=entry.blocklist.name,
        before=before,
        after=_entry_dict(entry),
    )
    return entry


@transaction.atomic
def entry_delete(*, actor=None, actor_label: str = "", entry_id: int) -> None:
    """Remove an entry from the draft. Side effects: row deleted, audit ``policies.entry.deleted``."""
    entry = BlocklistEntry.objects.select_related("blocklist").get(pk=entry_id)
    _editable(entry.blocklist)
    _audit(
        "policies.entry.deleted", actor, actor_label, entry, blocklist=entry.blocklist.name, before=_entry_dict(entry)
    )
    entry.delete()


# COPY text format: these four characters are the only ones a field must escape.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_CHUNK_ROWS = 20_000


def _copy_text(value: str) -> str:
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _insert_entries(blocklist: Blocklist, entries, *, user, label: str) -> None:
    """Bulk insert; PostgreSQL gets COPY (about ten times faster than INSERT batches at 100k rows).

    The COPY rows are formatted here as text in large chunks: psycopg's ``write_row`` adapts every value one by
    one, which cost more than PostgreSQL's own work at 100k rows. The constant columns come first, once.
    """
    if connection.vendor != "postgresql":
        BlocklistEntry.objects.bulk_create(
            (
                BlocklistEntry(
                    blocklist=blocklist,
                    pattern=e.pattern,
                    match_type=e.match_type,
                    reason_code=e.reason_code,
                    severity=e.severity,
                    action=e.action,
                    direction=e.direction,
                    note=e.note,
                    added_by=user,
                    added_by_label=label,
                )
                for e in entries
            ),
            batch_size=5000,
        )
        return
    now = timezone.now().isoformat()
    columns = (
        "blocklist_id",
        "window",
        "added_by_id",
        "added_by_label",
        "created_at",
        "updated_at",
        # per entry; match_type … direction were checked against fixed value sets, so need no escaping
        "match_type",
        "reason_code",
        "severity",
        "action",
        "direction",
        "note",
        "pattern",
    )
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    table = connection.ops.quote_name(BlocklistEntry._meta.db_table)
    user_id = getattr(user, "pk", None)
    user_field = "\\N" if user_id is None else str(user_id)  # \N is COPY's NULL
    prefix = f"{blocklist.pk}\t8\t{user_field}\t{_copy_text(label)}\t{now}\t{now}\t"
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
        for first in range(0, len(entries), _COPY_CHUNK_ROWS):
            copy.write(
                "".join(
                    f"{prefix}{e.match_type}\t{e.reason_code}\t{e.severity}\t{e.action}\t{e.direction}\t"
                    f"{_copy_text(e.note) if e.note else ''}\t{_copy_text(e.pattern)}\n"
                    for e in entries[first : first + _COPY_CHUNK_ROWS]
                )
            )


@transaction.atomic
@_gc_paused
def blocklist_import(
    *,
    actor=None,
    actor_label: str = "",
    list_name: str,
    data: bytes | str,
    filename: str = "",
    reason_code: str = "UNCLASSIFIED_REVIEW",
    severity: str = "medium",
    action: str = "review",
    match_type: str = "word",
    direction: str = "prompt",
    skip_invalid: bool = False,
) -> ImportReport:
    """Import a text or CSV file into ``list_name`` (created if missing). All or nothing unless ``skip_invalid``.

    Side effects: entries (bulk), audit ``policies.blocklist.imported`` (one event with counts and errors).
    """
    blocklist = Blocklist.objects.filter(name=list_name).first()
    if blocklist is not None:
        _editable(blocklist)
    defaults = {
        "reason_code": reason_code,
        "severity": severity,
        "action": action,
        "match_type": match_type,
        "direction": direction,
        "note": "",
    }
    existing = _existing_keys(blocklist) if blocklist is not None else {}
    report = parse_blocklist(data, filename=filename, defaults=defaults, existing=existing)
    if report.errors and not skip_invalid:
        return report
    if blocklist is None:
        blocklist = blocklist_create(actor=actor, actor_label=actor_label, name=list_name)
    _insert_entries(blocklist, report.entries, user=_user(actor), label=_label(actor, actor_label))
    report.imported = len(report.entries)
    _audit(
        "policies.blocklist.imported",
        actor,
        actor_label,
        blocklist,
        filename=filename,
        imported=report.imported,
        skipped=len(report.errors),
        errors=report.errors[:100],
    )
    return report


# --- profiles ---------------------------------------------------------------------------------------------------
@transaction.atomic
def profile_save(*, actor=None, actor_label: str = "", name: str, config: dict, description: str = "") -> PolicyProfile:
    """Create or change a profile in the draft. Side effects: audit ``policies.profile.created`` / ``.changed``."""
    try:
        config = validate_config(config)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    profile = PolicyProfile.objects.select_for_update().filter(name=name).first()
    before = None if profile is None else {"description": profile.description, "config": profile.config}
    profile = profile or PolicyProfile(name=name)
    profile.description, profile.config = description, config
    profile.full_clean()
    profile.save()
    _audit(
        f"policies.profile.{'created' if before is None else 'changed'}",
        actor,
        actor_label,
        profile,
        before=before,
        after={"description": description, "config": config},
    )
    return profile


@transaction.atomic
def profile_delete(*, actor=None, actor_label: str = "", profile_id: int) -> None:
    """Remove a profile from the draft (its clients fall back to ``default``). Side effects: audit."""
    profile = PolicyProfile.objects.get(pk=profile_id)
    _audit(
        "policies.profile.deleted",
        actor,
        actor_label,
        profile,
        before={"description": profile.description, "config": profile.config},
    )
    profile.delete()


# --- versions ---------------------------------------------------------------------------------------------------
def _distribute(version: PolicyVersion, state: runtime.PolicyState, staging: runtime.Staging | None = None) -> None:
    """Before commit: store the compiled state for the other processes and wait (bounded) until every live one
    has loaded it beside its current state (``version.staging``, ``version.shared``). After commit: swap this
    process, then tell the others, who swap in what they staged (the database already holds the truth; one that
    staged nothing loads it then). ``staging``: that first phase, when the caller started it before writing the
    version row. ``version.active_since`` is the wall-clock time the activation started (after the commit),
    ``version.announced`` whether the announcement reached Redis."""
    version.announced = version.active_since = None
    if staging is None:
        staging = runtime.stage_in_background(state, pk=version.pk, created_at=version.created_at)
    version.staging = staging.wait()
    version.shared = version.staging["shared"]

    def send():
        version.active_since = time.time()
        replaced = runtime.install(state)
        version.announced = runtime.announce(version.number)
        del replaced  # freed after the announcement, not before
        runtime.release_freed_memory()  # the replaced state's and the compile's pages

    transaction.on_commit(send)


def _impact_check(previous: PolicyVersion | None, old_snapshot: dict, new_state: runtime.PolicyState) -> None:
    """Raise ImpactConfirmationRequired when the draft newly refuses too much recent traffic.

    Only prompts the draft refuses are checked against the active version (that is all "newly refused" needs),
    a process that already runs the active version reuses its compiled state, and any other process compiles
    the active version only once the draft refuses something.
    """
    if not InferenceRequest.objects.exists():
        return
    number = previous.number if previous is not None else None
    old_state = None

    def old_ruleset(profile: str, j: str, c: str):
        nonlocal old_state
        if old_state is None:
            current = runtime.peek_state()
            if current is not None and current.version == number:
                old_state = current
            else:
                old_state = runtime.build_state(old_snapshot, version=number, label="active")
        return old_state.lookup(profile, j, c)[0]

    rows = InferenceRequest.objects.order_by("-created_at").values_list("user_input", "profile", "metadata")
    total = newly = 0
    for text, profile, metadata in rows[: settings.POLICY_PREVIEW_RECENT]:
        total += 1
        meta = metadata if isinstance(metadata, dict) else {}
        j, c = str(meta.get("jurisdiction") or ""), str(meta.get("context") or "")
        if check(text, "prompt", new_state.lookup(profile, j, c)[0]).action != "refuse":
            continue
        newly += check(text, "prompt", old_ruleset(profile, j, c)).action != "refuse"
    percent = 100.0 * newly / total if total else 0.0
    if percent > settings.POLICY_CONFIRM_REFUSE_PERCENT:  # newly > 0, so old_state is built
        preview = states_preview(old_state, new_state, corpus=False)
        raise ImpactConfirmationRequired(percent, total, preview)


@transaction.atomic
@_gc_paused
def policy_publish(*, actor=None, actor_label: str = "", note: str, confirm_impact: bool = False) -> PolicyVersion:
    """Publish the draft as the next numbered, immutable version and make it the active one.

    Compiles the draft once (a broken draft fails here, not in the processes). When it would newly refuse more
    than ``POLICY_CONFIRM_REFUSE_PERCENT`` of recent traffic, raises ImpactConfirmationRequired unless
    ``confirm_impact``. Side effects: PolicyVersion row, active flag moved, audit ``policies.version.published``;
    before commit, the compiled state is stored in Redis for the other processes (``version.shared``), which load
    it (``version.staging``, see ``_distribute``); on commit this process swaps and announces the number
    (``version.announced`` says if it worked).
    """
    note = (note or "").strip()
    if not note:
        raise PolicyError(MSG_NOTE_REQUIRED)
    blocklist_sync_builtin(actor=actor, actor_label="system")
    previous = PolicyVersion.objects.select_for_update().filter(is_active=True).first()
    old_snapshot = selectors.version_snapshot(previous)
    snapshot = selectors.draft_snapshot()
    diff = selectors.snapshot_diff(old_snapshot, snapshot)
    if previous is not None and selectors.diff_is_empty(diff):
        raise PolicyError(MSG_NOTHING_TO_PUBLISH)
    number = (PolicyVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1
    state = runtime.build_state(snapshot, version=number, label=f"v{number}")
    if not confirm_impact:
        _impact_check(previous, old_snapshot, state)
    now = timezone.now()
    version = PolicyVersion(
        pk=_reserve_version_pk(),
        created_at=now,
        number=number,
        created_by=_user(actor),
        created_by_label=_label(actor, actor_label),
        note=note[:1000],
        snapshot=snapshot,
        diff=diff,
        entry_count=selectors.entry_count(snapshot),
        is_active=True,
        activated_at=now,
    )
    # Not the snapshot: validating a 100k-entry JSON field again adds nothing. Not the constraints: the previous
    # version is still active here; the database enforces "one active version" on the INSERT below.
    version.full_clean(exclude=["snapshot"], validate_constraints=False)
    # With the row's key and time known before it is written (PostgreSQL), the processes load the compiled state
    # while this thread writes the snapshot (100k entries: most of a second); elsewhere staging follows the write.
    staging = None
    if version.pk is not None:
        staging = runtime.stage_in_background(state, pk=version.pk, created_at=now)
    try:
        if previous is not None:
            previous.is_active = False
            previous.save(update_fields=["is_active"])
        try:
            version.save(force_insert=True)
        except IntegrityError:
            raise PolicyError("another publish happened at the same time; try again") from None
        summary = {
            "lists": diff["lists"],
            "profiles": diff["profiles"],
            "entries": {k: diff["entries"][k] for k in ("added", "removed", "changed")},
        }
        _audit(
            "policies.version.published",
            actor,
            actor_label,
            version,
            number=number,
            note=note,
            previous=previous.number if previous else None,
            diff=summary,
            impact_confirmed=confirm_impact,
        )
        _distribute(version, state, staging)
    finally:
        if staging is not None:
            staging.join()  # a failed publish leaves no thread behind (its staged state is dropped unused)
    return version


def _reserve_version_pk() -> int | None:
    """The next PolicyVersion key, taken from its sequence now (PostgreSQL; None elsewhere: the INSERT picks it)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [PolicyVersion._meta.db_table])
        return cursor.fetchone()[0]


@transaction.atomic
@_gc_paused
def policy_rollback(*, actor=None, actor_label: str = "", to: int | None = None, note: str = "") -> PolicyVersion:
    """Make an earlier version active again (default: the one before the active one). The draft is untouched.

    Side effects: active flag moved, audit ``policies.version.rolled_back``; staging before commit, then swap +
    announce on commit (as ``policy_publish``).
    """
    current = PolicyVersion.objects.select_for_update().filter(is_active=True).first()
    if to is None:
        below = PolicyVersion.objects.filter(number__lt=current.number) if current else PolicyVersion.objects.none()
        target = below.order_by("-number").first()
        if target is None:
            raise PolicyError(MSG_NO_PREVIOUS)
    else:
        target = PolicyVersion.objects.filter(number=to).first()
        if target is None:
            raise PolicyError(MSG_NO_VERSION.format(number=to))
    if current is not None and current.pk == target.pk:
        raise PolicyError(MSG_ALREADY_ACTIVE.format(number=target.number))
    state = runtime.build_state(target.snapshot, version=target.number, label=target.label)
    staging = runtime.stage_in_background(state, pk=target.pk, created_at=target.created_at)
    try:
        if current is not None:
            current.is_active = False
            current.save(update_fields=["is_active"])
        target.is_active, target.activated_at = True, timezone.now()
        target.save(update_fields=["is_active", "activated_at"])
        _audit(
            "policies.version.rolled_back",
            actor,
            actor_label,
            target,
            number=target.number,
            previous=current.number if current else None,
            note=note,
        )
        _distribute(target, state, staging)
    finally:
        staging.join()  # as in policy_publish: a failed rollback leaves no thread behind
    return target


# --- reviewers' proposals ---------------------------------------------------------------------------------------
@transaction.atomic
def proposal_accept(
    *,
    actor=None,
    actor_label: str = "",
    proposal_id: int,
    blocklist_id: int,
    match_type: str = "substring",
    action: str = "refuse",
) -> BlocklistEntry:
    """Turn a reviewer's proposal into a draft entry of ``blocklist_id`` and mark it accepted.

    Side effects: entry (audit ``policies.entry.created``), proposal accepted (audit by the review app),
    audit ``policies.proposal.accepted``.
    """
    from review.models import BlocklistProposal
    from review.services import blocklist_proposal_mark

    proposal = BlocklistProposal.objects.select_for_update().get(pk=proposal_id)
    try:
        blocklist_proposal_mark(proposal_id=proposal_id, status="accepted", actor=actor, actor_label=actor_label)
    except ValidationError as exc:
        raise PolicyError(" ".join(exc.messages)) from None
    entry = entry_create(
        actor=actor,
        actor_label=actor_label,
        blocklist_id=blocklist_id,
        pattern=proposal.text,
        reason_code=proposal.reason_code,
        severity=proposal.severity,
        match_type=match_type,
        action=action,
        note=f"proposal {proposal.pk} by {proposal.proposed_by_label}",
    )
    _audit("policies.proposal.accepted", actor, actor_label, entry, proposal_id=proposal.pk, entry_id=entry.pk)
    return entry


@transaction.atomic
def proposal_reject(*, actor=None, actor_label: str = "", proposal_id: int, reason: str = "") -> None:
    """Mark a reviewer's proposal rejected. Side effects: proposal rejected, audit ``policies.proposal.rejected``."""
    from review.models import BlocklistProposal
    from review.services import blocklist_proposal_mark

    try:
        proposal = blocklist_proposal_mark(
            proposal_id=proposal_id, status="rejected", actor=actor, actor_label=actor_label
        )
    except ValidationError as exc:
        raise PolicyError(" ".join(exc.messages)) from None
    except BlocklistProposal.DoesNotExist:
        raise PolicyError(f"no proposal {proposal_id}") from None
    _audit("policies.proposal.rejected", actor, actor_label, proposal, reason=reason)
