"""Score the detectors on a labelled corpus folder (harmful/benign/evasion JSONL files)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from safety_admin.detectors import check, compile_ruleset, default_ruleset
from safety_admin.detectors.evaluation import evaluate, format_report, load_rules_file

NO_FILES = "no .jsonl files in {path}"


class Command(BaseCommand):
    help = "Recall per reason code, benign refuse/review rates and latency percentiles on a labelled folder."

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--ruleset", default="", help="a YAML/JSON rules file instead of the default packs")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the figures as one JSON object")
        parser.add_argument("--misses", type=int, default=0, help="print up to N missed and N false-positive items")

    def handle(self, *args, directory, ruleset, as_json=False, misses=0, **options):
        path = Path(directory)
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise CommandError(NO_FILES.format(path=path))
        rs = compile_ruleset(load_rules_file(ruleset), version=Path(ruleset).stem) if ruleset else default_ruleset()
        report = evaluate(files, lambda text, kind: check(text, kind, rs))
        if as_json:
            self.stdout.write(_dumps(report))
        else:
            self.stdout.write(format_report(report, misses=misses))


def _dumps(report: dict) -> str:
    return json.dumps({k: v for k, v in report.items() if k != "items"}, indent=2, sort_keys=True)
