import json

import pytest

from safety_admin.inference.models import InferenceRequest
from safety_admin.policies import services
from safety_admin.policies.models import BlocklistEntry
from safety_admin.policies.preview import CORPUS_MISSING_NOTE, draft_preview

pytestmark = pytest.mark.django_db


def _request(text, profile=""):
    return InferenceRequest.objects.create(
        principal_id="apikey:x",
        principal_pseudonym="p",
        principal_tier="user",
        user_input=text,
        profile=profile,
        status="completed",
    )


@pytest.fixture
def draft():
    """Active v1 refuses "pangolin"; the draft drops it, refuses "quokka" and reviews "wombat"."""
    old = services.blocklist_create(actor_label="a", name="old")
    pangolin = services.entry_create(
        actor_label="a", blocklist_id=old.pk, pattern="pangolin", reason_code="HATE", action="refuse"
    )
    services.policy_publish(actor_label="a", note="v1")
    new = services.blocklist_create(actor_label="a", name="new")
    services.entry_delete(actor_label="a", entry_id=pangolin.pk)
    services.entry_create(actor_label="a", blocklist_id=new.pk, pattern="quokka", reason_code="HATE", action="refuse")
    services.entry_create(actor_label="a", blocklist_id=new.pk, pattern="wombat", reason_code="HATE", action="review")
    return {e.pattern: f"bl.new.{e.pk}" for e in BlocklistEntry.objects.filter(blocklist=new)}


def test_preview_counts_on_recent_requests_and_corpus(draft, tmp_path):
    ids = [_request(t).pk for t in ("quokka one", "quokka two", "a wombat", "pangolin here", "nothing at all")]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dev.jsonl").write_text(
        "\n".join(
            [
                json.dumps({"id": "c1", "text": "a quokka", "label": "benign"}),
                json.dumps({"id": "c2", "text": "the pangolin", "label": "harmful"}),
                "not json",
                json.dumps({"id": "c3", "text": "calm words", "label": "benign"}),
            ]
        )
    )
    preview = draft_preview(limit=100, corpus_dir=corpus)

    recent = preview.recent
    assert (recent.total, recent.counts) == (5, {"newly_refused": 2, "newly_review": 1, "no_longer_caught": 1})
    assert recent.percent("newly_refused") == 40.0
    assert [(e["id"], e["before"], e["after"], e["rules"]) for e in recent.examples["newly_refused"]] == [
        (str(ids[1]), "pass", "refuse", [draft["quokka"]]),
        (str(ids[0]), "pass", "refuse", [draft["quokka"]]),
    ]
    assert [(e["id"], e["rules"]) for e in recent.examples["newly_review"]] == [(str(ids[2]), [draft["wombat"]])]
    gone = recent.examples["no_longer_caught"][0]
    assert (gone["id"], gone["before"], gone["after"], gone["rules"][0].startswith("bl.old.")) == (
        str(ids[3]),
        "refuse",
        "pass",
        True,
    )

    part = preview.corpus
    assert (part.total, part.counts) == (3, {"newly_refused": 1, "newly_review": 0, "no_longer_caught": 1})
    assert part.by_label == {"newly_refused": {"benign": 1}, "no_longer_caught": {"harmful": 1}}
    assert preview.corpus_note == ""


def test_preview_uses_each_requests_profile_and_limit(draft):
    services.profile_save(actor_label="a", name="lenient", config={"actions": {"HATE": "log"}})
    _request("quokka for lenient", profile="lenient")
    _request("quokka for default")
    preview = draft_preview(limit=1, corpus=False)
    assert (preview.recent.total, preview.recent.counts["newly_refused"]) == (1, 1)
    preview = draft_preview(limit=10, corpus=False)
    assert (preview.recent.total, preview.recent.counts["newly_refused"]) == (2, 1)


def test_missing_corpus_is_skipped_with_a_note(draft, tmp_path):
    preview = draft_preview(limit=10, corpus_dir=tmp_path / "absent")
    assert preview.corpus is None
    assert preview.corpus_note == CORPUS_MISSING_NOTE.format(path=tmp_path / "absent")
