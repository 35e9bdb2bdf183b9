"""Scan a JSONL file of texts with the detectors and write one verdict line per input line."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from safety_admin.detectors import check, compile_ruleset, default_ruleset
from safety_admin.detectors.evaluation import load_rules_file, percentile, read_jsonl

MISSING_FILE = "no such file: {path}"


class Command(BaseCommand):
    help = 'Read lines {"id", "text", "kind"?} and write {"id", "action", "reason_codes", "elapsed_us"} per line.'

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--ruleset", default="", help="a YAML/JSON rules file instead of the default packs")
        parser.add_argument("--out", default="", help="write the JSONL verdicts here instead of stdout")

    def handle(self, *args, file, ruleset, out, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(MISSING_FILE.format(path=path))
        rs = compile_ruleset(load_rules_file(ruleset), version=Path(ruleset).stem) if ruleset else default_ruleset()
        sink = open(out, "w", encoding="utf-8") if out else self.stdout  # noqa: SIM115 - closed below when a file
        actions: dict[str, int] = {}
        elapsed = []
        try:
            for item in read_jsonl(path):
                text = item.get("text") if isinstance(item.get("text"), str) else ""
                kind = item.get("kind") if item.get("kind") in ("prompt", "output") else "prompt"
                verdict = check(text, kind, rs)
                actions[verdict.action] = actions.get(verdict.action, 0) + 1
                elapsed.append(verdict.elapsed_us)
                line = {"id": item["id"], "action": verdict.action, "reason_codes": verdict.reason_codes,
                        "elapsed_us": verdict.elapsed_us}  # fmt: skip
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
        finally:
            if out:
                sink.close()
        summary = ", ".join(f"{name} {count}" for name, count in sorted(actions.items()))
        self.stderr.write(
            f"scanned {len(elapsed)} texts: {summary or 'none'}; latency p50 {percentile(elapsed, 50)} us, "
            f"p99 {percentile(elapsed, 99)} us"
        )
