"""``manage.py publish_policy --note "why"``: publish the current draft as the next active version."""

from django.core.management.base import BaseCommand

from safety_admin.policies.management.commands.load_blocklist import publish


class Command(BaseCommand):
    help = "Publish the draft (lists, entries, profiles) as a new immutable, active policy version."

    def add_arguments(self, parser):
        parser.add_argument("--note", required=True, help="Why (goes into the change log)")
        parser.add_argument("--confirm-impact", action="store_true", help="Publish even if many requests flip")
        parser.add_argument("--actor", default="cli")

    def handle(self, *args, **opts):
        publish(self, note=opts["note"], actor=opts["actor"], confirm=opts["confirm_impact"])
