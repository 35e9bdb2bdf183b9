import io

import pytest
from django.core.management import CommandError, call_command

from audits.models import AuditEvent
from safety_admin.detectors import check
from safety_admin.policies import runtime, services
from safety_admin.policies.models import Blocklist, BlocklistEntry, PolicyVersion
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


def _list(name="custom"):
    return services.blocklist_create(actor_label="alice", name=name)


def _actions():
    return list(AuditEvent.objects.order_by("id").values_list("action", "actor_label", "subject_type"))


def test_entry_edits_are_audited_with_before_and_after():
    blocklist = _list()
    entry = services.entry_create(
        actor_label="alice",
        blocklist_id=blocklist.pk,
        pattern="ghost gun",
        reason_code="HIGH_RISK_WEAPON",
        severity="high",
        action="refuse",
    )
    services.entry_update(actor_label="bob", entry_id=entry.pk, severity="critical")
    services.entry_delete(actor_label="carol", entry_id=entry.pk)
    assert _actions() == [
        ("policies.blocklist.created", "alice", "policies.blocklist"),
        ("policies.entry.created", "alice", "policies.blocklistentry"),
        ("policies.entry.updated", "bob", "policies.blocklistentry"),
        ("policies.entry.deleted", "carol", "policies.blocklistentry"),
    ]
    updated = AuditEvent.objects.get(action="policies.entry.updated").data
    assert (updated["before"]["severity"], updated["after"]["severity"]) == ("high", "critical")
    assert BlocklistEntry.objects.count() == 0


def test_builtin_lists_are_read_only_but_can_be_disabled():
    services.blocklist_sync_builtin()
    builtin = Blocklist.objects.filter(builtin=True).first()
    with pytest.raises(services.PolicyError) as exc:
        services.entry_create(actor_label="alice", blocklist_id=builtin.pk, pattern="x", reason_code="HATE")
    assert str(exc.value) == services.MSG_BUILTIN_READ_ONLY.format(name=builtin.name)
    services.blocklist_set_enabled(actor_label="alice", blocklist_id=builtin.pk, enabled=False)
    assert Blocklist.objects.get(pk=builtin.pk).enabled is False
    assert AuditEvent.objects.filter(action="policies.blocklist.disabled", subject_id=str(builtin.pk)).count() == 1


def test_duplicate_entry_is_refused():
    blocklist = _list()
    services.entry_create(actor_label="a", blocklist_id=blocklist.pk, pattern="Ghost Gun", reason_code="HATE")
    with pytest.raises(services.PolicyError) as exc:
        services.entry_create(actor_label="a", blocklist_id=blocklist.pk, pattern="ghost gun", reason_code="HATE")
    assert str(exc.value) == services.MSG_DUPLICATE_ENTRY.format(name="custom")


def test_publish_creates_numbered_version_with_diff_swaps_and_announces(
    django_capture_on_commit_callbacks, redis_client
):
    blocklist = _list()
    entry = services.entry_create(
        actor_label="alice", blocklist_id=blocklist.pk, pattern="zebra crossing", reason_code="HATE", action="refuse"
    )
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(runtime.CHANNEL)
    with django_capture_on_commit_callbacks(execute=True):
        v1 = services.policy_publish(actor_label="alice", note="first")
    assert (v1.number, v1.is_active, v1.created_by_label, v1.note, v1.entry_count) == (1, True, "alice", "first", 1)
    assert v1.diff["entries"]["added"] == 1
    assert v1.diff["entries"]["examples"]["added"][0]["rule_id"] == f"bl.custom.{entry.pk}"
    assert v1.announced is True
    assert redis_client.get(runtime.ACTIVE_KEY) == b"1"
    message = wait_for(lambda: pubsub.get_message(timeout=0.1), timeout=5, message="the announcement")
    assert message["channel"] == runtime.CHANNEL.encode()
    assert check("a zebra crossing", "prompt", runtime.active_ruleset()).action == "refuse"
    assert runtime.active_ruleset().version == "v1"
    published = AuditEvent.objects.get(action="policies.version.published")
    assert (published.actor_label, published.data["number"], published.data["previous"]) == ("alice", 1, None)
    pubsub.close()


def test_publish_without_changes_and_without_note_is_refused():
    services.policy_publish(actor_label="a", note="baseline")
    with pytest.raises(services.PolicyError) as exc:
        services.policy_publish(actor_label="a", note="again")
    assert str(exc.value) == services.MSG_NOTHING_TO_PUBLISH
    with pytest.raises(services.PolicyError) as exc:
        services.policy_publish(actor_label="a", note="  ")
    assert str(exc.value) == services.MSG_NOTE_REQUIRED


def test_rollback_defaults_to_previous_and_can_target_any_version(django_capture_on_commit_callbacks):
    blocklist = _list()
    services.policy_publish(actor_label="a", note="v1: empty list")
    services.entry_create(
        actor_label="a", blocklist_id=blocklist.pk, pattern="okapi", reason_code="HATE", action="refuse"
    )
    services.policy_publish(actor_label="a", note="v2: okapi")
    services.entry_create(
        actor_label="a", blocklist_id=blocklist.pk, pattern="tapir", reason_code="HATE", action="refuse"
    )
    services.policy_publish(actor_label="a", note="v3: tapir")
    with django_capture_on_commit_callbacks(execute=True):
        back = services.policy_rollback(actor_label="bob", note="tapir floods reviewers")
    assert back.number == 2
    assert list(PolicyVersion.objects.filter(is_active=True).values_list("number", flat=True)) == [2]
    assert runtime.active_ruleset().version == "v2"
    assert check("okapi", "prompt", runtime.active_ruleset()).action == "refuse"
    assert check("tapir", "prompt", runtime.active_ruleset()).action == "pass"
    with django_capture_on_commit_callbacks(execute=True):
        services.policy_rollback(actor_label="bob", to=1)
    assert check("okapi", "prompt", runtime.active_ruleset()).action == "pass"
    with pytest.raises(services.PolicyError) as exc:
        services.policy_rollback(actor_label="bob", to=1)
    assert str(exc.value) == services.MSG_ALREADY_ACTIVE.format(number=1)
    with pytest.raises(services.PolicyError) as exc:
        services.policy_rollback(actor_label="bob", to=9)
    assert str(exc.value) == services.MSG_NO_VERSION.format(number=9)
    events = AuditEvent.objects.filter(action="policies.version.rolled_back").order_by("id")
    assert [(e.actor_label, e.data["number"], e.data["previous"]) for e in events] == [("bob", 2, 3), ("bob", 1, 2)]


def test_rollback_command_defaults_to_previous_version():
    services.policy_publish(actor_label="a", note="one")
    _list()
    services.policy_publish(actor_label="a", note="two")
    out = io.StringIO()
    call_command("rollback_policy", stdout=out)
    assert out.getvalue() == "active version is now v1\n"
    with pytest.raises(CommandError) as exc:
        call_command("rollback_policy")
    assert str(exc.value) == services.MSG_NO_PREVIOUS


def test_load_blocklist_command_reports_line_numbers_and_imports_nothing(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text("# header\nfoo bar\n\nfoo bar\n" + "y" * 600 + "\nbaz\n")
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("load_blocklist", "--file", str(path), "--list", "weapons", stderr=err)
    assert str(exc.value) == services.MSG_IMPORT_INVALID.format(count=2)
    assert err.getvalue() == ("terms.txt:4: duplicate of line 2\nterms.txt:5: term longer than 500 characters\n")
    assert BlocklistEntry.objects.count() == 0
    assert Blocklist.objects.filter(name="weapons").exists() is False


def test_load_blocklist_skip_invalid_then_publish(tmp_path):
    path = tmp_path / "terms.csv"
    path.write_text("term,severity,action\nwalrus,high,refuse\n(a+)+,,\nnarwhal,,\n")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "load_blocklist",
        "--file",
        str(path),
        "--list",
        "sea",
        "--reason-code",
        "HATE",
        "--skip-invalid",
        "--match-type",
        "regex",
        stdout=out,
        stderr=err,
    )
    assert out.getvalue() == "imported 2 entries into sea (skipped 1 invalid)\n"
    rows = list(
        BlocklistEntry.objects.order_by("id").values_list("pattern", "match_type", "reason_code", "severity", "action")
    )
    assert rows == [("walrus", "regex", "HATE", "high", "refuse"), ("narwhal", "regex", "HATE", "medium", "review")]
    path2 = tmp_path / "more.txt"
    path2.write_text("beluga\n")
    out = io.StringIO()
    call_command(
        "load_blocklist",
        "--file",
        str(path2),
        "--list",
        "sea",
        "--publish",
        "--note",
        "whales",
        "--reason-code",
        "HATE",
        stdout=out,
    )
    assert out.getvalue() == "imported 1 entries into sea\npublished v1 (3 entries)\n"
    event = AuditEvent.objects.filter(action="policies.blocklist.imported").order_by("id").first()
    assert (event.data["imported"], event.data["skipped"]) == (2, 1)


def test_import_stores_special_characters_exactly(admin_user):
    """The import writes COPY text itself: backslashes, tabs and newlines must reach the table unchanged."""
    data = (
        "term,match_type,note\n"
        '"\\bcat\\d+\\b",regex,"back\\slash\nand newline"\n'
        '"tab\there",substring,\\N\n'
        "naïve café,word,\n"
    )
    report = services.blocklist_import(
        actor=admin_user, list_name="special", data=data, filename="x.csv", reason_code="HATE"
    )
    assert (report.imported, report.errors) == (3, [])
    rows = list(
        BlocklistEntry.objects.order_by("id").values_list(
            "pattern", "match_type", "note", "added_by_id", "added_by_label", "window", "blocklist__name"
        )
    )
    assert rows == [
        ("\\bcat\\d+\\b", "regex", "back\\slash\nand newline", admin_user.pk, "polly", 8, "special"),
        ("tab\there", "substring", "\\N", admin_user.pk, "polly", 8, "special"),
        ("naïve café", "word", "", admin_user.pk, "polly", 8, "special"),
    ]
    entry = BlocklistEntry.objects.order_by("id").first()
    assert entry.created_at is not None
    assert entry.created_at == entry.updated_at
    services.policy_publish(actor=admin_user, note="special")
    assert check("a cat42 here", "prompt", runtime.active_ruleset()).action == "review"


def test_publish_policy_command_needs_confirmation_for_high_impact(api_key, client):
    key = api_key()
    for text in ("hello there", "the quokka smiles", "plain question"):
        assert (
            client.post(
                "/safety/infer", {"user_input": text}, content_type="application/json", headers={"X-API-Key": key}
            ).status_code
            == 202
        )
    services.entry_create(
        actor_label="a", blocklist_id=_list().pk, pattern="quokka", reason_code="HATE", action="refuse"
    )
    with pytest.raises(CommandError) as exc:
        call_command("publish_policy", "--note", "quokkas")
    assert str(exc.value).startswith("this draft would newly refuse 33.3% of the last 3 requests")
    assert PolicyVersion.objects.count() == 0
    out = io.StringIO()
    call_command("publish_policy", "--note", "quokkas", "--confirm-impact", stdout=out)
    assert out.getvalue() == "published v1 (1 entries)\n"
    assert AuditEvent.objects.get(action="policies.version.published").data["impact_confirmed"] is True
