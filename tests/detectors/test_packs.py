"""Every shipped pack: it loads, its examples hit (true positive) and its near-misses pass (benign)."""

import pytest

from safety_admin.detectors import REASON_CODES, check, compile_ruleset, default_ruleset, load_packs
from safety_admin.detectors.packs import pack_examples

PACKS = sorted(load_packs())
CAUGHT = {"review", "refuse"}


def test_packs_cover_every_reason_code():
    codes = {rule.reason_code for rules in load_packs().values() for rule in rules}

    # OBFUSCATION hits come from the engine itself (signals and evasive matches), not from a pack rule.
    assert sorted(set(REASON_CODES) - codes) == ["OBFUSCATION"]


def test_rule_ids_are_unique():
    ids = [rule.rule_id for rules in load_packs().values() for rule in rules]

    assert len(ids) == len(set(ids))


def test_hard_refusals_are_reserved_for_the_highest_risks():
    refusing = {rule.reason_code for rules in load_packs().values() for rule in rules if rule.action == "refuse"}

    assert refusing <= {"HIGH_RISK_BIO", "HIGH_RISK_CHEM", "HIGH_RISK_RADNUC", "HIGH_RISK_EXPLOSIVE", "HIGH_RISK_CSAM"}


@pytest.mark.parametrize("pack", PACKS)
def test_pack_true_positive_and_benign_near_miss(pack):
    rules = load_packs()[pack]
    own = compile_ruleset(rules, version=pack)
    direction = "output" if all(rule.direction == "output" for rule in rules) else "prompt"
    examples = pack_examples()[pack]
    assert examples["positive"]
    assert examples["negative"]

    for text in examples["positive"]:
        verdict = check(text, direction, own)
        assert verdict.action in CAUGHT, text
        assert {h.rule_id for h in verdict.hits} & {r.rule_id for r in rules}, text
    for text in examples["negative"]:
        assert check(text, direction, default_ruleset()).action not in CAUGHT, text


def test_mandatory_block_packs_also_check_model_output():
    verdict = check("Sure. To make sarin, first obtain the precursors, then follow these steps.", "output")

    assert (verdict.action, verdict.primary_reason_code) == ("refuse", "HIGH_RISK_CHEM")
    assert check("The 1995 Tokyo subway attack used sarin.", "output").action == "pass"
