"""`manage.py verify_audit_chain`: re-check every link and signature; exit 1 naming the first bad sequence number."""

from django.core.management.base import BaseCommand, CommandError

from audits.verify import default_jobs, verify_and_record, verify_chain

BROKEN = "audit chain BROKEN at seq {seq}: {problem}"


class Command(BaseCommand):
    help = "Verify the audit hash chain and its signed checkpoints; record the outcome in the trail."

    def add_arguments(self, parser):
        parser.add_argument(
            "--jobs", type=int, default=default_jobs(), help="processes to use (default: the available cores)"
        )
        parser.add_argument("--no-record", action="store_true", help="do not append the outcome to the trail")

    def handle(self, *args, jobs: int, no_record: bool, **options):
        result = verify_chain(jobs=jobs) if no_record else verify_and_record(jobs=jobs)
        self.stdout.write(
            f"checked {result.events} events (1..{result.last_seq}) and {result.checkpoints} checkpoints "
            f"in {result.seconds:.2f} s"
        )
        if result.last_checkpoint_seq:
            self.stdout.write(f"last good checkpoint: #{result.last_checkpoint_seq} at {result.last_checkpoint_at}")
        if result.unsigned:
            self.stdout.write(f"{result.unsigned} events after the last checkpoint (signed at the next one)")
        if result.pending:
            self.stdout.write(f"{result.pending} events committed but not chained yet")
        if not result.ok:
            for problem in result.problems[1:]:
                self.stderr.write(f"also: seq {problem.seq}: {problem.message}")
            raise CommandError(BROKEN.format(seq=result.first_bad_seq, problem=result.problem))
        self.stdout.write(self.style.SUCCESS("audit chain OK"))
