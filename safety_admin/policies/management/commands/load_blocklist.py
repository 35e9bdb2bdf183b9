"""``manage.py load_blocklist --file blocklist.txt [--list NAME] [...]``: import a term list or CSV into the draft."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from safety_admin.detectors import ACTIONS, DIRECTIONS, MATCH_TYPES, REASON_CODES, SEVERITIES
from safety_admin.policies import services


class Command(BaseCommand):
    help = "Import a blocklist file (one term per line, or CSV with a header) into a list of the draft."

    def add_arguments(self, parser):
        parser.add_argument("--file", required=True, help="Text file (one term per line, # comments) or CSV")
        parser.add_argument("--list", default="imported", help="Target list name (created when missing)")
        parser.add_argument("--reason-code", default="UNCLASSIFIED_REVIEW", choices=REASON_CODES)
        parser.add_argument("--severity", default="medium", choices=SEVERITIES)
        parser.add_argument("--action", default="review", choices=ACTIONS)
        parser.add_argument("--match-type", default="word", choices=MATCH_TYPES)
        parser.add_argument("--direction", default="prompt", choices=DIRECTIONS)
        parser.add_argument("--skip-invalid", action="store_true", help="Import the valid lines even if some are not")
        parser.add_argument("--publish", action="store_true", help="Publish the draft right after a clean import")
        parser.add_argument("--note", default="", help="Change note for --publish")
        parser.add_argument("--confirm-impact", action="store_true", help="Publish even if many requests flip")
        parser.add_argument("--actor", default="cli", help="Who is importing (for the audit trail)")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            report = services.blocklist_import(
                actor_label=opts["actor"],
                list_name=opts["list"],
                data=data,
                filename=path.name,
                reason_code=opts["reason_code"],
                severity=opts["severity"],
                action=opts["action"],
                match_type=opts["match_type"],
                direction=opts["direction"],
                skip_invalid=opts["skip_invalid"],
            )
        except services.PolicyError as exc:
            raise CommandError(str(exc)) from None
        for line, message in report.errors:
            self.stderr.write(f"{path.name}:{line}: {message}")
        if report.errors and not opts["skip_invalid"]:
            raise CommandError(services.MSG_IMPORT_INVALID.format(count=len(report.errors)))
        self.stdout.write(
            f"imported {report.imported} entries into {opts['list']}"
            + (f" (skipped {len(report.errors)} invalid)" if report.errors else "")
        )
        if opts["publish"]:
            if report.errors:
                raise CommandError("not publishing: the file had invalid lines")
            note = opts["note"] or f"import {path.name} into {opts['list']}"
            publish(self, note=note, actor=opts["actor"], confirm=opts["confirm_impact"])


def publish(command: BaseCommand, *, note: str, actor: str, confirm: bool) -> None:
    """Shared by load_blocklist --publish and publish_policy."""
    try:
        version = services.policy_publish(actor_label=actor, note=note, confirm_impact=confirm)
    except services.ImpactConfirmationRequired as exc:
        raise CommandError(f"{exc} (pass --confirm-impact)") from None
    except services.PolicyError as exc:
        raise CommandError(str(exc)) from None
    command.stdout.write(f"published v{version.number} ({version.entry_count} entries)")
    if version.announced is False:
        command.stderr.write(
            "warning: Redis unreachable; processes switch when it answers again "
            "(fresh processes load the new version from the database)"
        )
