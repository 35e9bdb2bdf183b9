"""Mutate a corpus of attacks deterministically, run each through the pre-check, report improper passes."""

import json

from django.core.management.base import BaseCommand, CommandError

from safety_admin.detectors import check, compile_ruleset, default_ruleset
from safety_admin.detectors.evaluation import load_rules_file
from safety_admin.detectors.fuzz import fuzz, load_corpus

EMPTY_CORPUS = "the attack corpus {path} has no attacks"


class Command(BaseCommand):
    help = "Policy mutation fuzzer: exit 1 when a mutated attack of a mandatory-block kind passes the pre-check."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--n", type=int, default=200)
        parser.add_argument("--corpus", default="", help="YAML list of attacks (id, text, kind, mandatory)")
        parser.add_argument("--ruleset", default="", help="a YAML/JSON rules file instead of the default packs")

    def handle(self, *args, seed, n, corpus, ruleset, **options):
        attacks = load_corpus(corpus or None)
        if not attacks:
            raise CommandError(EMPTY_CORPUS.format(path=corpus or "(built-in)"))
        rs = compile_ruleset(load_rules_file(ruleset), version="fuzz") if ruleset else default_ruleset()
        report = fuzz(attacks, lambda text: check(text, "prompt", rs), seed=seed, n=n)
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
        if report["mandatory_passes"]:
            raise SystemExit(1)
