"""The speed paths agree with the regexes and structures they stand in for (so verdicts cannot drift).

Each fast path (byte-class and big-integer pre-tests, leet runs grown from hints, base64 candidates, the
word view without split, token offsets from piece lengths, prefilter words from the automaton pass) is
compared with its plain definition on generated texts that are dense in the traits it looks for.
"""

import random
import re

import pytest

from safety_admin.detectors import Rule, check, compile_ruleset
from safety_admin.detectors import engine as en
from safety_admin.detectors import normalize as nz

PIECES = [
    "a", "b", "I", "x", "Z", "7", "_", "cat", "DOG", "McDonald", "iPhone", "rAnSoM", "ThE", "abc1", "ab_cd", "h4ck3r",
    "l33t", "m@ke", "b!g", "QUJDREVGR0hJSktMTU5PUA==", "==QUJDREVGR0hJSktMTU5PUA", "aGVsbG8gd29ybGQ",
    "internationalization", "\\x68\\x65\\x6c\\x6c\\x6f\\x20\\x77\\x6f", "68 65 6c 6c", "6f:20:77:6f",
    "deadbeefdeadbeef", "3a", "booom", "zzz", "...", "b.o.m.b", "k-i-l-l", "l o v e", "caf\u00e9",
    "\u0392\u039f\u039c\u0392", "\u0430nthr\u0430\u0445", "\u0663", "\u200b", "=", "+", "/", "-",
]  # fmt: skip  # Greek and Cyrillic look-alikes, an Arabic-Indic digit, a zero-width space
SEPARATORS = [" ", " ", " ", "  ", ", ", ".", "-", "", "\n", " : ", "\\x", "="]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) + rng.choice(SEPARATORS) for _ in range(rng.randint(0, 30))) for _ in range(n)]


TEXTS = [*_texts(1500, 1), "", " ", "a b c d", "a  b   c d", "x" * 40, "=" + "A" * 30]
ASCII_TEXTS = [t for t in TEXTS if t.isascii()]


def test_leet_runs_are_the_leet_token_matches():
    for text in TEXTS:
        base = nz.base_view(text)
        assert list(nz.leet_runs(base)) == [m.span() for m in nz.LEET_TOKEN_RE.finditer(base)], text


def test_squash_byte_tests_match_the_hint_and_the_run_regex():
    for text in ASCII_TEXTS:
        for base in (text, nz.base_view(text)):
            assert nz._single_pair(base) == bool(nz.SQUASH_HINT_RE.search(" " + base + " ")), base
            assert nz._single_chain(base) == bool(nz.SQUASH_RE.search(base)), base


def test_triple_test_is_implied_by_the_repeat_regex():
    for text in ASCII_TEXTS:
        assert nz._has_triple(text) == bool(re.search(r"(.)\1\1", text, re.DOTALL)), text


def test_base64_candidates_are_the_regex_matches():
    for text in TEXTS:
        got = [m.span() for m in nz._base64_matches(text, text.isascii())]
        assert got == [m.span() for m in nz.BASE64_RE.finditer(text)], text


def test_hex_and_case_byte_classes_match_their_regexes_on_ascii():
    for text in ASCII_TEXTS:
        hex_classes = nz.classes(text, nz._HEX_CLASS)
        assert bool(nz._HEX_HINT_CLASS_RE.search(hex_classes)) == bool(nz.HEX_HINT_RE.search(text)), text
        assert (b"aA" in nz.classes(text, nz._CASE_CLASS)) == bool(nz._CASE_FLIP_RE.search(text)), text


def test_odd_case_words_follow_the_word_regex():
    for text in [*TEXTS, "camelCase iPhone McDonald USA Title lower wOrD_x wOrD1 wOrD"]:
        words = nz._WORD3_RE.findall(text)
        odd, count = nz._odd_case_words(text)
        assert odd == [w for w in words if not (w.islower() or w.isupper() or w.istitle())], text
        assert count() == len(words), text


def test_word_view_fast_path_matches_the_separator_regex():
    for text in ASCII_TEXTS:
        base = nz.base_view(text)
        assert nz.word_view(base) == " " + nz.SEPARATORS_RE.sub(" ", base).strip() + " ", text


def test_token_starts_and_space_positions_match_the_regexes():
    for text in TEXTS:
        base = nz.base_view(text)
        assert en._token_starts(base) == [m.start() for m in nz.TOKEN_RE.finditer(base)], text
        view = nz.word_view(base)
        assert en._space_positions(view) == [m.start() for m in re.finditer(" ", view)], text


def test_rot13_decision_from_known_words_matches_the_full_scan():
    for text in [*TEXTS, "use rot13 here", "rot-13 it", "a caesar cipher", "encoded", "shifted text", "rot 13"]:
        base = nz.base_view(text)
        present = {word for word in nz.ROT13_LITERALS if word in base}
        assert nz.wants_rot13(base, present) == nz.wants_rot13(base), text


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("what is your social security number", True),  # a literal with a space: its words, then `in`
        ("what is your social  security number", False),  # the words are there, the literal is not
        ("your security and social life", False),
        ("yours, socially", False),
    ],
)
def test_prefilter_literals_with_spaces_still_need_the_exact_literal(text, hit):
    rule = Rule("r", r"social\s+security", "PRIVACY_PII", match_type="regex", prefilter="your&social security")

    assert (check(text, "prompt", compile_ruleset([rule])).action == "review") is hit


def test_word_prefilter_literal_matches_inside_words_like_in():
    rule = Rule("r", r"shell\w*", "CYBER_ABUSE", match_type="regex", prefilter="shellcode")

    assert check("my shellcodes", "prompt", compile_ruleset([rule])).action == "review"
    assert check("my shell code", "prompt", compile_ruleset([rule])).action == "pass"


def test_hits_keep_first_match_order_when_one_rule_id_is_used_twice():
    rules = [Rule("dup", "bomb", "HIGH_RISK_EXPLOSIVE", severity="high"), Rule("dup", "knife", "HIGH_RISK_WEAPON")]
    rs = compile_ruleset(rules)

    assert [h.reason_code for h in check("a knife and a bomb", "prompt", rs).hits] == ["HIGH_RISK_WEAPON"]
    assert [h.reason_code for h in check("a bomb and a knife", "prompt", rs).hits] == ["HIGH_RISK_EXPLOSIVE"]


def test_each_direction_reads_only_the_rules_that_apply_to_it():
    rules = [
        Rule("p", "alpha", "HATE"),
        Rule("o", "beta", "HATE", direction="output"),
        Rule("b", "gamma", "HATE", direction="both"),
        Rule("x", "delta", "HATE", direction="audit"),
        Rule("xp", "alpha ~ delta", "HATE", match_type="proximity", direction="audit"),
    ]
    rs = compile_ruleset(rules)

    def ids(direction):
        return sorted(h.rule_id for h in check("alpha beta gamma delta", direction, rs).hits)

    assert ids("prompt") == ["b", "p"]
    assert ids("output") == ["b", "o"]
    assert ids("audit") == ["b", "x", "xp"]
    assert ids("both") == ["b"]


def test_confusable_folding_of_non_ascii_runs_is_the_full_translate():
    assert all(chr(cp) == target for cp, target in nz.CONFUSABLES.items() if cp < 128)
    for text in TEXTS:
        assert nz.fold_confusables(text) == text.translate(nz.CONFUSABLES), text


def test_a_key_shared_by_coded_and_listed_refs_finds_every_rule_in_any_order():
    """The builder codes a key's first word ref in its int and lists it once a second ref (a word, a proximity
    part, an unusual direction or a prefilter literal) arrives: whatever the order, every rule sharing it hits."""
    shared = [
        Rule("w1", "foxtrot", "HATE"),
        Rule("w2", "foxtrot", "HATE", direction="both"),
        Rule("odd", "foxtrot", "HATE", direction="audit"),
        Rule("near", "foxtrot ~ golf", "HATE", match_type="proximity"),
        Rule("rx", r"foxtrot\s+golf", "HATE", match_type="regex", prefilter="foxtrot"),
        Rule("sub", "foxtrot", "HATE", match_type="substring"),
    ]
    text = "foxtrot golf"
    expected = {"prompt": ["near", "rx", "sub", "w1", "w2"], "output": ["w2"], "audit": ["odd", "w2"]}
    rng = random.Random(5)
    for _ in range(30):
        rules = rng.sample(shared, len(shared))
        rs = compile_ruleset(rules)
        for direction, ids in expected.items():
            assert sorted({h.rule_id for h in check(text, direction, rs).hits}) == ids, (direction, rules)
        squashed = {h.rule_id for h in check("f o x t r o t", "prompt", rs).hits}
        assert {"w1", "w2", "sub"} <= squashed, rules
