"""python manage.py create_api_key --name N --tier T [--profile P] — prints the key alone on its last line."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from safety_admin.gateway.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is shown once, alone on the last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="Who the key is for, e.g. 'public-chat'")
        parser.add_argument("--tier", required=True, choices=["user", "verified", "privileged"])
        parser.add_argument("--profile", default="", help="Policy profile for this client")

    def handle(self, *args, name, tier, profile, **options):
        try:
            key, raw = api_key_create(name=name, tier=tier, profile=profile, actor_label="manage.py create_api_key")
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(
            f"Created key {key.name!r} (prefix {key.prefix}, tier {key.tier}). Store it now: it is not shown again."
        )
        self.stdout.write(raw)
