"""``manage.py rollback_policy [--to N]``: make an earlier version active again (default: the previous one)."""

from django.core.management.base import BaseCommand, CommandError

from safety_admin.policies import services


class Command(BaseCommand):
    help = "Activate an earlier policy version; every process switches within a second."

    def add_arguments(self, parser):
        parser.add_argument("--to", type=int, default=None, help="Version number (default: the previous version)")
        parser.add_argument("--note", default="", help="Why (goes into the audit trail)")
        parser.add_argument("--actor", default="cli")

    def handle(self, *args, **opts):
        try:
            version = services.policy_rollback(actor_label=opts["actor"], to=opts["to"], note=opts["note"])
        except services.PolicyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"active version is now v{version.number}")
        if version.announced is False:
            self.stderr.write("warning: Redis unreachable; processes switch when it answers again")
