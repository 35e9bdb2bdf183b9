"""`manage.py export_audit --since … --until …`: JSONL events, their covering checkpoints and the public keys.

docs/verify_export.py checks such a file without this project (docs/audit.md).
"""

import json
import sys
from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audits import signing
from audits.chain import canonical_time
from audits.models import AuditCheckpoint, AuditEvent
from audits.services import audit_checkpoint_create

FORMAT = "safety-audit-export-v1"
BAD_TIME = "--since/--until take an ISO date or date-time, got {value!r}"


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(BAD_TIME.format(value=value))
        moment = datetime.combine(day, time.min)
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def event_record(event: AuditEvent, *, in_range: bool) -> dict:
    """The exported form of an event: exactly the chained fields, plus its hash."""
    return {
        "type": "event",
        "in_range": in_range,
        "seq": event.seq,
        "prev_hash": event.prev_hash,
        "ticket_id": event.ticket_id,
        "created_at": canonical_time(event.created_at),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "subject_repr": event.subject_repr,
        "request_id": event.request_id,
        "trace_id": event.trace_id,
        "principal_pseudonym": event.principal_pseudonym,
        "data": event.data,
        "hash": event.hash,
    }


class Command(BaseCommand):
    help = "Export audit events of a time range as JSONL with the checkpoints that cover them."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="ISO date or date-time (inclusive); default: the first event")
        parser.add_argument("--until", help="ISO date or date-time (exclusive); default: now")
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")

    def handle(self, *args, since=None, until=None, output=None, **options):
        since_at, until_at = _moment(since), _moment(until)
        # Seal the head first so every exported event is covered by a signed checkpoint.
        audit_checkpoint_create()
        events = AuditEvent.objects.all()
        if since_at:
            events = events.filter(created_at__gte=since_at)
        if until_at:
            events = events.filter(created_at__lt=until_at)
        first = events.order_by("seq").values_list("seq", flat=True).first()
        last = events.order_by("-seq").values_list("seq", flat=True).first()
        cover = None
        if last is not None:
            cover = AuditCheckpoint.objects.filter(seq__gte=last).order_by("seq").first()
        end = cover.seq if cover else last
        public = sorted(signing.trusted_public_keys())
        header = {
            "type": "header",
            "format": FORMAT,
            "since": since_at.isoformat() if since_at else None,
            "until": until_at.isoformat() if until_at else None,
            "first_seq": first,
            "last_seq": last,
            "exported_at": canonical_time(timezone.now()),
            "public_keys": public,
            "fingerprints": {key: signing.fingerprint(key) for key in public},
        }
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115 - closed below
        try:
            stream.write(json.dumps(header) + "\n")
            count = 0
            if first is not None:
                for event in AuditEvent.objects.filter(seq__gte=first, seq__lte=end).order_by("seq").iterator(2000):
                    stream.write(json.dumps(event_record(event, in_range=event.seq <= last)) + "\n")
                    count += 1
                for cp in AuditCheckpoint.objects.filter(seq__gte=first, seq__lte=end).order_by("seq"):
                    record = {"type": "checkpoint", "seq": cp.seq, "head_hash": cp.head_hash,
                              "created_at": canonical_time(cp.created_at), "public_key": cp.public_key,
                              "signature": cp.signature}  # fmt: skip
                    stream.write(json.dumps(record) + "\n")
        finally:
            if output:
                stream.close()
        if output:
            self.stdout.write(f"exported {count} events (seq {first}..{end}) to {output}")
