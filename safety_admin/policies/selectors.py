"""Read-only queries for policies: the draft as a snapshot, versions, diffs, proposals."""

from django.db import connection
from django.db.models import Count

from review.models import BlocklistProposal
from safety_admin.policies.models import Blocklist, BlocklistEntry, PolicyProfile, PolicyVersion
from safety_admin.policies.runtime import SNAPSHOT_FORMAT, builtin_list_name, default_snapshot, load_packs

DIFF_EXAMPLES = 50


def draft_snapshot() -> dict:
    """The draft (the editable lists, entries and profiles) in the same shape as a published snapshot."""
    lists = list(Blocklist.objects.order_by("name").values("id", "name", "builtin", "pack", "enabled"))
    names = {row["id"]: row["name"] for row in lists}
    entries: dict[int, list] = {row["id"]: [] for row in lists}
    # One plain query fetched at once: 100k rows through the ORM's iterator cost more than the rest of this.
    table = connection.ops.quote_name(BlocklistEntry._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(c)
        for c in ("blocklist_id", "id", "pattern", "match_type", "reason_code", "severity", "action", "direction",
                  "window", "note")
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} ORDER BY blocklist_id, id")
        rows = cursor.fetchall()
    for list_id, entry_id, *rest in rows:
        if list_id in names:  # a list created after the query above is not part of this snapshot
            entries[list_id].append([f"bl.{names[list_id]}.{entry_id}", *rest])
    del rows
    out = []
    for row in lists:
        item = {"name": row["name"], "builtin": row["builtin"], "pack": row["pack"], "enabled": row["enabled"]}
        if not row["builtin"]:
            item["entries"] = entries[row["id"]]
        out.append(item)
    # Packs that have no row yet (never synced) are on, as in a deployment with nothing published.
    known = {row["name"] for row in lists}
    for pack in sorted(load_packs()):
        if builtin_list_name(pack) not in known:
            out.append({"name": builtin_list_name(pack), "builtin": True, "pack": pack, "enabled": True})
    out.sort(key=lambda item: item["name"])
    profiles = {p.name: p.config for p in PolicyProfile.objects.order_by("name")}
    return {"format": SNAPSHOT_FORMAT, "lists": out, "profiles": profiles}


def version_active() -> PolicyVersion | None:
    return PolicyVersion.objects.filter(is_active=True).first()


def version_snapshot(version: PolicyVersion | None) -> dict:
    return version.snapshot if version is not None else default_snapshot()


def version_list():
    """Versions newest first, without their (possibly large) snapshots."""
    return PolicyVersion.objects.defer("snapshot").order_by("-number")


def blocklist_list():
    return Blocklist.objects.annotate(entry_count=Count("entries")).order_by("-builtin", "name")


def _entry_map(snapshot: dict) -> dict[str, list]:
    """rule id -> the whole entry row (rows are compared as they are: same id, so the rest decides)."""
    return {row[0]: row for item in snapshot.get("lists", []) for row in item.get("entries", [])}


def snapshot_diff(old: dict, new: dict) -> dict:
    """What changed from ``old`` to ``new``: lists, their enabled flags, entries (with examples) and profiles."""
    old_lists = {i["name"]: i for i in old.get("lists", [])}
    new_lists = {i["name"]: i for i in new.get("lists", [])}
    old_entries, new_entries = _entry_map(old), _entry_map(new)
    added = [k for k in new_entries if k not in old_entries]
    removed = [k for k in old_entries if k not in new_entries]
    changed = [k for k in new_entries if k in old_entries and new_entries[k] != old_entries[k]]
    old_profiles, new_profiles = old.get("profiles", {}), new.get("profiles", {})

    def show(rule_id: str, row: list) -> dict:
        return {
            "rule_id": rule_id,
            "pattern": row[1],
            "match_type": row[2],
            "reason_code": row[3],
            "severity": row[4],
            "action": row[5],
            "direction": row[6],
        }

    return {
        "lists": {
            "added": sorted(set(new_lists) - set(old_lists)),
            "removed": sorted(set(old_lists) - set(new_lists)),
            "enabled": sorted(
                n
                for n in new_lists
                if new_lists[n].get("enabled") and n in old_lists and not old_lists[n].get("enabled")
            ),
            "disabled": sorted(
                n
                for n in new_lists
                if not new_lists[n].get("enabled") and n in old_lists and old_lists[n].get("enabled")
            ),
        },
        "entries": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "examples": {
                "added": [show(k, new_entries[k]) for k in added[:DIFF_EXAMPLES]],
                "removed": [show(k, old_entries[k]) for k in removed[:DIFF_EXAMPLES]],
                "changed": [
                    {"before": show(k, old_entries[k]), "after": show(k, new_entries[k])}
                    for k in changed[:DIFF_EXAMPLES]
                ],
            },
        },
        "profiles": {
            "added": sorted(set(new_profiles) - set(old_profiles)),
            "removed": sorted(set(old_profiles) - set(new_profiles)),
            "changed": sorted(n for n in new_profiles if n in old_profiles and new_profiles[n] != old_profiles[n]),
        },
    }


def diff_is_empty(diff: dict) -> bool:
    lists, entries, profiles = diff["lists"], diff["entries"], diff["profiles"]
    return not (
        any(lists.values()) or entries["added"] or entries["removed"] or entries["changed"] or any(profiles.values())
    )


def entry_count(snapshot: dict) -> int:
    return sum(len(i.get("entries", [])) for i in snapshot.get("lists", []))


def proposal_list_pending():
    """Reviewers' blocklist proposals awaiting an admin, oldest first."""
    return BlocklistProposal.objects.filter(status="pending").select_related("escalation").order_by("created_at")
