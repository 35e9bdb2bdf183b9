import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from audits.chain import canonical_json
from audits.models import AuditCheckpoint, AuditEvent
from audits.services import ACTION_PURGED, audit_chain_seal, audit_event_record, content_digest
from audits.signing import public_key_hex
from audits.verify import verify_chain
from review.models import Escalation
from safety_admin.inference.models import InferenceRequest

pytestmark = pytest.mark.django_db
SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "verify_export.py"


def _run_script(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(path), *args], capture_output=True, text=True, timeout=60)


def test_export_is_verified_by_the_documented_script(events, tmp_path):
    events(4)
    call_command("audit_checkpoint")
    events(3)  # after the checkpoint: export seals the head so these are covered too
    out = tmp_path / "export.jsonl"

    call_command("export_audit", "--since", "2000-01-01", "--until", "2100-01-01", "--output", str(out))

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["header"] + ["event"] * 7 + ["checkpoint"] * 2
    assert (lines[0]["first_seq"], lines[0]["last_seq"], lines[0]["public_keys"]) == (1, 7, [public_key_hex()])
    # 4: the first seal found no checkpoint; 7: signed by the export for the events after it.
    assert [cp["seq"] for cp in lines[-2:]] == [4, 7]
    result = _run_script(out, "--public-key", public_key_hex())
    assert (result.returncode, result.stdout) == (0, "OK: verified 7 events and 2 checkpoints\n")

    # Any edit to the file is caught by the script.
    lines[3]["data"]["i"] = 99
    out.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = _run_script(out)
    assert (result.returncode, result.stdout) == (1, "FAILED: seq 3: hash does not match the event's fields\n")


def test_export_of_a_time_range_carries_context_up_to_the_covering_checkpoint(events, tmp_path):
    early = events(2) + events(1)  # the first seal signs a checkpoint at 2; 3 is not signed yet
    events(2)
    out = tmp_path / "range.jsonl"
    # Times are taken under the chain lock, so event 4 is strictly later than event 3.
    until = (early[-1].created_at + timedelta(microseconds=1)).isoformat()

    call_command("export_audit", "--since", early[0].created_at.isoformat(), "--until", until, "--output", str(out))

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    header, records = lines[0], lines[1:]
    assert (header["first_seq"], header["last_seq"]) == (1, 3)
    # Events 4 and 5 come along (marked out of range) to link event 3 to the checkpoint that covers it,
    # which the export signed for the head.
    assert [(r["seq"], r["in_range"]) for r in records if r["type"] == "event"] == [
        (1, True), (2, True), (3, True), (4, False), (5, False)]  # fmt: skip
    assert [r["seq"] for r in records if r["type"] == "checkpoint"] == [2, 5]
    assert _run_script(out).stdout == "OK: verified 3 events and 2 checkpoints\n"


def _request(days_old: int, **fields) -> InferenceRequest:
    req = InferenceRequest.objects.create(
        principal_id="apikey:abcd", principal_pseudonym="u_x", principal_tier="verified",
        user_input="secret prompt", system_prompt="be nice", response="an answer", **fields,
    )  # fmt: skip
    InferenceRequest.objects.filter(pk=req.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return req


def _escalate(req: InferenceRequest, status: str) -> None:
    Escalation.objects.create(request=req, direction="prompt", severity="high", status=status,
                              due_at=timezone.now())  # fmt: skip


def test_purge_blanks_old_content_except_open_escalations_and_keeps_the_chain_valid(settings):
    settings.CONTENT_RETENTION_DAYS = 30
    old = _request(31)
    old_decided = _request(40)
    _escalate(old_decided, "approved")
    old_pending = _request(45)
    _escalate(old_pending, "pending")
    recent = _request(29)
    audit_event_record(action="tests.before")

    call_command("purge_content", "--batch-size", "1")

    contents = {
        r.pk: (r.user_input, r.system_prompt, r.response, r.content_purged_at is not None)
        for r in InferenceRequest.objects.all()
    }
    assert contents == {
        old.pk: ("", "", "", True),
        old_decided.pk: ("", "", "", True),
        old_pending.pk: ("secret prompt", "be nice", "an answer", False),
        recent.pk: ("secret prompt", "be nice", "an answer", False),
    }
    digest = content_digest({"user_input": "secret prompt", "system_prompt": "be nice", "response": "an answer"})
    purged = list(AuditEvent.objects.filter(action=ACTION_PURGED).order_by("id").values_list("data", flat=True))
    assert [p["content_sha256"] for p in purged] == [{str(old_decided.pk): digest}, {str(old.pk): digest}]
    assert [(p["count"], p["retention_days"]) for p in purged] == [(1, 30), (1, 30)]
    assert "secret prompt" not in canonical_json(purged)
    assert audit_chain_seal() == 3
    assert (verify_chain().ok, AuditCheckpoint.objects.count()) == (True, 1)
