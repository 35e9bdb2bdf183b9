import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audits.models import AuditEvent
from safety_admin.inference.models import InferenceRequest
from safety_admin.policies import services
from safety_admin.policies.models import Blocklist, BlocklistEntry, PolicyVersion

pytestmark = pytest.mark.django_db

PAGES = [
    "policies:dashboard",
    "policies:preview",
    "policies:publish",
    "policies:version-list",
    "policies:import",
    "policies:proposal-list",
]


@pytest.fixture(autouse=True)
def _small_corpus(settings, tmp_path):
    # The real dev corpus takes seconds to replay twice; the preview itself is tested in test_preview.py.
    settings.POLICY_CORPUS_DIR = tmp_path / "no-corpus"


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("name", PAGES)
def test_pages_need_staff(client, django_user_model, name):
    url = reverse(name)
    assert client.get(url).status_code == 302  # anonymous → login
    client.force_login(django_user_model.objects.create_user(username="rev", password="pw-rev-1234", tier="privileged"))
    response = client.get(url)
    assert (response.status_code, response["Location"].split("?")[0]) == (302, "/admin/login/")


@pytest.mark.parametrize("name", PAGES)
def test_pages_render_for_staff(staff, name):
    assert staff.get(reverse(name)).status_code == 200


def test_wrong_methods_are_refused(staff):
    blocklist = services.blocklist_create(actor_label="a", name="words")
    assert staff.get(reverse("policies:blocklist-toggle", args=[blocklist.pk])).status_code == 405
    assert staff.put(reverse("policies:publish")).status_code == 405


def test_toggle_disables_a_builtin_list(staff):
    services.blocklist_sync_builtin()
    builtin = Blocklist.objects.filter(builtin=True).first()
    response = staff.post(reverse("policies:blocklist-toggle", args=[builtin.pk]))
    assert response.status_code == 302
    assert Blocklist.objects.get(pk=builtin.pk).enabled is False
    assert AuditEvent.objects.get(action="policies.blocklist.disabled").actor_label == "polly"


def test_publish_asks_twice_when_recent_traffic_would_be_refused(staff):
    for text in ("kudu here", "hello", "hi", "hey"):
        InferenceRequest.objects.create(
            principal_id="apikey:x", principal_pseudonym="p", principal_tier="user", user_input=text
        )
    blocklist = services.blocklist_create(actor_label="a", name="words")
    services.entry_create(
        actor_label="a", blocklist_id=blocklist.pk, pattern="kudu", reason_code="HATE", action="refuse"
    )
    response = staff.post(reverse("policies:publish"), {"note": "kudu"})
    assert response.status_code == 200
    assert response.context["impact"].percent == 25.0
    assert b'id="impact"' in response.content
    assert PolicyVersion.objects.count() == 0
    response = staff.post(reverse("policies:publish"), {"note": "kudu", "confirm_impact": "on"})
    assert (response.status_code, response["Location"]) == (302, reverse("policies:version-detail", args=[1]))
    version = PolicyVersion.objects.get()
    assert (version.number, version.is_active, version.created_by_label, version.note) == (1, True, "polly", "kudu")


def test_publish_bad_input_keeps_the_form(staff):
    response = staff.post(reverse("policies:publish"), {"note": ""})
    assert (response.status_code, PolicyVersion.objects.count()) == (200, 0)
    assert response.context["form"].errors == {"note": ["This field is required."]}


def test_rollback_confirms_on_get_and_acts_on_post(staff):
    services.policy_publish(actor_label="a", note="one")
    services.blocklist_create(actor_label="a", name="words")
    services.policy_publish(actor_label="a", note="two")
    url = reverse("policies:version-rollback", args=[1])
    assert staff.get(url).status_code == 200
    assert PolicyVersion.objects.get(is_active=True).number == 2
    response = staff.post(url, {"note": "back"})
    assert (response.status_code, PolicyVersion.objects.get(is_active=True).number) == (302, 1)
    event = AuditEvent.objects.get(action="policies.version.rolled_back")
    assert (event.actor_label, event.data["number"], event.data["previous"], event.data["note"]) == (
        "polly",
        1,
        2,
        "back",
    )
    assert staff.get(reverse("policies:version-rollback", args=[9])).status_code == 404


def test_import_upload_lists_invalid_lines_then_imports_a_clean_file(staff):
    form = {
        "list_name": "uploads",
        "reason_code": "HATE",
        "severity": "high",
        "action": "refuse",
        "match_type": "regex",
        "direction": "prompt",
    }
    bad = SimpleUploadedFile("bad.txt", b"fine\n(a+)+\n[oops\n")
    response = staff.post(reverse("policies:import"), {**form, "file": bad})
    assert response.status_code == 200
    assert [line for line, _ in response.context["report"].errors] == [2, 3]
    assert BlocklistEntry.objects.count() == 0
    good = SimpleUploadedFile("good.txt", b"# ok\nfine\nalso fine\n")
    response = staff.post(reverse("policies:import"), {**form, "file": good})
    assert (response.status_code, response["Location"]) == (302, reverse("policies:dashboard"))
    assert list(BlocklistEntry.objects.order_by("id").values_list("pattern", "match_type", "added_by_label")) == [
        ("fine", "regex", "polly"),
        ("also fine", "regex", "polly"),
    ]


def test_accept_and_reject_reviewer_proposals(staff):
    from review.models import BlocklistProposal
    from review.services import blocklist_proposal_create

    blocklist = services.blocklist_create(actor_label="a", name="from-review")
    one = blocklist_proposal_create(text="bad phrase", reason_code="HARASSMENT", severity="high", actor_label="rev")
    two = blocklist_proposal_create(text="meh phrase", reason_code="HARASSMENT", severity="low", actor_label="rev")
    response = staff.post(
        reverse("policies:proposal-accept", args=[one.pk]),
        {"blocklist": blocklist.pk, "match_type": "substring", "action": "refuse"},
    )
    assert response.status_code == 302
    entry = BlocklistEntry.objects.get()
    assert (entry.blocklist_id, entry.pattern, entry.reason_code, entry.severity, entry.action) == (
        blocklist.pk,
        "bad phrase",
        "HARASSMENT",
        "high",
        "refuse",
    )
    staff.post(reverse("policies:proposal-reject", args=[two.pk]), {"reason": "too broad"})
    assert dict(BlocklistProposal.objects.values_list("pk", "status")) == {one.pk: "accepted", two.pk: "rejected"}
    actions = set(AuditEvent.objects.filter(action__contains="proposal").values_list("action", "actor_label"))
    assert actions >= {("policies.proposal.accepted", "polly"), ("policies.proposal.rejected", "polly")}
    # Deciding twice is refused and changes nothing.
    staff.post(
        reverse("policies:proposal-accept", args=[one.pk]),
        {"blocklist": blocklist.pk, "match_type": "substring", "action": "refuse"},
    )
    assert BlocklistEntry.objects.count() == 1


def test_admin_entry_add_goes_through_the_service(staff):
    blocklist = services.blocklist_create(actor_label="a", name="words")
    data = {
        "blocklist": blocklist.pk,
        "pattern": "(x+)+",
        "match_type": "regex",
        "reason_code": "HATE",
        "severity": "high",
        "action": "refuse",
        "direction": "prompt",
        "window": 8,
        "note": "",
    }
    response = staff.post(reverse("admin:policies_blocklistentry_add"), data)
    assert response.status_code == 200  # the form shows the catastrophic-regex error
    assert BlocklistEntry.objects.count() == 0
    response = staff.post(reverse("admin:policies_blocklistentry_add"), {**data, "pattern": r"\bx+y\b"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="policies.entry.created", actor_label="polly").count() == 1


@pytest.mark.parametrize("count", [1, 5])
def test_version_list_query_count_does_not_grow(staff, django_assert_max_num_queries, count):
    blocklist = services.blocklist_create(actor_label="a", name="words")
    for n in range(count):
        services.entry_create(actor_label="a", blocklist_id=blocklist.pk, pattern=f"w{n}", reason_code="HATE")
        services.policy_publish(actor_label="a", note=f"v{n}")
    with django_assert_max_num_queries(8):
        assert staff.get(reverse("policies:version-list")).status_code == 200


def test_admin_list_add_and_disable_action_are_audited(staff):
    response = staff.post(reverse("admin:policies_blocklist_add"), {"name": "slurs", "description": "d"})
    assert response.status_code == 302
    blocklist = Blocklist.objects.get(name="slurs")
    response = staff.post(
        reverse("admin:policies_blocklist_changelist"), {"action": "disable_lists", "_selected_action": [blocklist.pk]}
    )
    assert response.status_code == 302
    assert Blocklist.objects.get(pk=blocklist.pk).enabled is False
    assert list(
        AuditEvent.objects.filter(action__startswith="policies.").order_by("id").values_list("action", "actor_label")
    ) == [
        ("policies.blocklist.created", "polly"),
        ("policies.blocklist.disabled", "polly"),
    ]
