"""Compile rules into one Aho-Corasick automaton (plus guarded regexes) and check texts over every view.

Word and substring rules, and every term of a proximity rule, live in a single automaton whose keys are
normalized terms: `` term `` for word-boundary semantics (the word view pads and collapses separators),
`` term`` for a prefix term written ``term*``, and ``term`` for substring rules. One pass per view finds
every rule at once, so the cost does not grow with the number of terms.
"""

import re
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import ahocorasick

from safety_admin.detectors import normalize as nz
from safety_admin.detectors.types import ACTION_RANK, SEVERITIES, SEVERITY_RANK, Hit, Rule, Verdict

SCORE_THRESHOLD = 3  # summed weight of distinct signal rules of one reason code that escalates to review
REGEX_INPUT_CHARS = 20_000  # regexes see at most this much of a text (head), bounding backtracking
PROXIMITY_MAX_POSITIONS = 64
PART_WORD = -1
_SPACE_RE = re.compile(" ")

Classifier = Callable[[str, str], Iterable[Hit]]


@dataclass(frozen=True)
class Ruleset:
    """Compiled, immutable rules; safe to share between threads (nothing mutates it after compile)."""

    version: str
    rules: tuple[Rule, ...]
    automaton: object = None
    squash_automaton: object = None
    regexes: tuple[tuple[int, re.Pattern, tuple[str, ...]], ...] = ()
    proximity: tuple[tuple[int, int], ...] = ()  # (rule index, number of parts)
    term_count: int = 0
    weights: dict = field(default_factory=dict, compare=False, hash=False)
    classifier: Classifier | None = field(default=None, compare=False)


def _split_alternatives(pattern: str) -> list[str]:
    return [p.strip() for p in pattern.split("|") if p.strip()]


def _term_key(term: str, match_type: str) -> str:
    """The automaton key of one term; ``""`` when nothing is left after normalization."""
    prefix = term.endswith("*") and match_type != "substring"
    norm = nz.normalize_term(term.rstrip("*") if prefix else term)
    if not norm:
        return ""
    if match_type == "substring":
        return norm.replace(" ", "") if " " not in term else norm
    return f" {norm}" if prefix else f" {norm} "


def compile_ruleset(
    rules: Iterable[Rule], version: str = "builtin", *, classifier: Classifier | None = None
) -> Ruleset:
    """Compile ``rules`` once; invalid regexes are skipped (they can never match) rather than raising."""
    rules = tuple(rules)
    keys: dict[str, list[tuple[int, int]]] = {}
    squash_keys: dict[str, list[tuple[int, int]]] = {}
    regexes = []
    proximity = []

    def add(key: str, ref: tuple[int, int], term_norm: str) -> None:
        keys.setdefault(key, []).append(ref)
        squashed = term_norm.replace(" ", "")
        if len(squashed) >= 4:
            squash_keys.setdefault(squashed, []).append(ref)

    for index, rule in enumerate(rules):
        if rule.match_type == "regex":
            try:
                compiled = re.compile(rule.pattern, re.IGNORECASE)
            except (re.error, TypeError, ValueError, OverflowError, RecursionError):
                continue
            prefilter = tuple(nz.base_view(t) for t in _split_alternatives(rule.prefilter))
            regexes.append((index, compiled, prefilter))
        elif rule.match_type == "proximity":
            parts = [_split_alternatives(part) for part in rule.pattern.split("~")]
            parts = [p for p in parts if p]
            if len(parts) < 2:
                continue
            for part_index, terms in enumerate(parts):
                for term in terms:
                    key = _term_key(term, "word")
                    if key:
                        add(key, (index, part_index), key.strip())
            proximity.append((index, len(parts)))
        else:
            for term in _split_alternatives(rule.pattern):
                key = _term_key(term, rule.match_type)
                if key:
                    add(key, (index, PART_WORD), key.strip())
    return Ruleset(
        version=version,
        rules=rules,
        automaton=_build(keys),
        squash_automaton=_build(squash_keys),
        regexes=tuple(regexes),
        proximity=tuple(proximity),
        term_count=len(keys),
        weights={rule.rule_id: rule.weight for rule in rules if rule.weight},
        classifier=classifier,
    )


def _build(keys: dict[str, list[tuple[int, int]]]):
    """An automaton whose value per key is (key length, refs); refs are (rule index, part) pairs."""
    automaton = ahocorasick.Automaton()
    for key, refs in keys.items():
        automaton.add_word(key, (len(key), tuple(refs)))
    if len(automaton):
        automaton.make_automaton()
        return automaton
    return None


def default_rules() -> list[Rule]:
    """Every rule of every shipped pack, in pack order."""
    from safety_admin.detectors.packs import load_packs

    return [rule for rules in load_packs().values() for rule in rules]


@lru_cache(maxsize=1)
def default_ruleset() -> Ruleset:
    return compile_ruleset(default_rules(), version="builtin")


@dataclass
class _Found:
    """Where one rule matched: first span per view, and token positions per proximity part."""

    views: dict[str, tuple[int, int, nz.View | None, str]] = field(default_factory=dict)
    parts: dict[str, dict[int, list[tuple[int, int, int]]]] = field(default_factory=dict)


class _Scan:
    """One check of one text: collects matches over every view, then turns them into hits."""

    def __init__(self, ruleset: Ruleset, direction: str):
        self.rs = ruleset
        self.direction = direction
        self.found: dict[int, _Found] = {}
        self._applies = {}
        self.view_text: dict[str, str] = {}
        self._spaces: dict[str, list[int]] = {}

    def tokens(self, label: str, items: list[tuple]) -> list[tuple[int, int, int]]:
        """(token index, start, end) per match: markers from run_view are expanded, squash positions kept."""
        out: list[tuple[int, int, int]] = []
        for item in items:
            if item[0] != -1:
                out.append(item)
                continue
            spaces = self._spaces.get(label)
            if spaces is None:  # token index = spaces before the match in the word view
                spaces = self._spaces[label] = [m.start() for m in _SPACE_RE.finditer(self.view_text[label])]
            _marker, length, ends = item
            out.extend((bisect_right(spaces, end - length + 1), end - length + 1, end + 1) for end in ends)
        return out

    def applies(self, index: int) -> bool:
        ok = self._applies.get(index)
        if ok is None:
            ok = self._applies[index] = self.rs.rules[index].applies_to(self.direction)
        return ok

    def run_view(self, view: nz.View, label: str, origin: tuple[int, int] | None) -> None:
        automaton = self.rs.automaton
        if automaton is None:
            return
        text = view.text
        # Phase 1 (tight loop): the end offsets of each distinct key. Common words match many times, so the
        # per-rule work of phase 2 is done once per distinct key, not once per occurrence.
        occurrences: dict[tuple, list[int]] = {}
        for end, value in automaton.iter(text):
            ends = occurrences.get(value)
            if ends is None:
                occurrences[value] = [end]
            elif len(ends) < PROXIMITY_MAX_POSITIONS:
                ends.append(end)
        for (length, refs), ends in occurrences.items():
            for index, part in refs:
                if not self.applies(index):
                    continue
                entry = self.found.get(index)
                if entry is None:
                    entry = self.found[index] = _Found()
                if part == PART_WORD:
                    if label not in entry.views:
                        entry.views[label] = (ends[0] - length + 1, ends[0] + 1, view, origin)
                    continue
                # a marker (-1, key length, shared end offsets): expanded by tokens() only for rules whose
                # every part matched, so a common word costs one append per rule here
                entry.parts.setdefault(label, {}).setdefault(part, []).append((-1, length, ends))
                self.view_text[label] = text
                entry.views.setdefault("_prox_" + label, (ends[0] - length + 1, ends[0] + 1, view, origin))

    def run_squash(self, runs, label: str, base_label: str, origin_of: Callable, token_of: Callable) -> None:
        automaton = self.rs.squash_automaton
        if automaton is None:
            return
        for run, start, end in runs:
            for _end, (_length, refs) in automaton.iter(run):
                for index, part in refs:
                    if not self.applies(index):
                        continue
                    entry = self.found.setdefault(index, _Found())
                    if part == PART_WORD:
                        entry.views.setdefault(label, (0, 0, None, origin_of(start, end)))
                    else:
                        # a squashed run is one token at its place in the base view; its parts join the
                        # base view's parts, so "disable the s m o k e d e t e c t o r s" still pairs up
                        positions = entry.parts.setdefault(base_label, {}).setdefault(part, [])
                        # both ends: the spaced letters each count as a token of the base view
                        positions.append((token_of(start), 0, 0))
                        positions.append((token_of(end), 0, 0))
                        entry.views.setdefault("_prox_" + base_label, (0, 0, None, origin_of(start, end)))


def _raise(severity: str, steps: int = 1) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, SEVERITY_RANK[severity] + steps)]


class _SpanMap:
    """Maps offsets in a view back to the original text, computed only when a hit needs it."""

    def __init__(self, text: str, base: str):
        self.text = text
        self.base = base
        # Plain ASCII without ignorables: the base view is the text lowercased, one char for one char.
        self._identity = len(text) == len(base) and text.isascii()
        self._offsets: list[int] | None = None
        self._tokens: dict[str, tuple[list[int], list[int]]] = {}

    def base_to_original(self, pos: int) -> int:
        if self._identity:
            return min(pos, len(self.text))
        if self._offsets is None:
            rebuilt, offsets = nz.base_offsets(self.text)
            self._offsets = offsets if rebuilt == self.base else []
        if self._offsets:
            if pos >= len(self._offsets):
                return len(self.text)
            return self._offsets[pos]
        return int(pos * len(self.text) / max(1, len(self.base)))

    def word_to_base(self, view: nz.View, word_pos: int) -> int:
        # Token k of the word view starts after its k-th space; the same token k starts at starts[k] in the source.
        cached = self._tokens.get(view.text)
        if cached is None:
            spaces = [m.start() for m in _SPACE_RE.finditer(view.text)]
            starts = [m.start() for m in nz.TOKEN_RE.finditer(view.base)]
            cached = self._tokens[view.text] = (spaces, starts)
        spaces, starts = cached
        k = bisect_right(spaces, word_pos) - 1
        if k < 0 or k >= len(starts):
            return len(view.base) if k >= 0 else 0
        return starts[k] + (word_pos - spaces[k] - 1)

    def span(self, view: nz.View, start: int, end: int) -> tuple[int, int]:
        # Padding spaces are part of the keys: trim them off before mapping.
        while start < end and view.text[start] == " ":
            start += 1
        while end > start and view.text[end - 1] == " ":
            end -= 1
        base_start = self.word_to_base(view, start)
        base_end = self.word_to_base(view, max(start, end - 1)) + 1
        if len(view.base) != len(self.base):  # repeat-collapsed views: proportional
            scale = len(self.base) / max(1, len(view.base))
            base_start, base_end = int(base_start * scale), int(base_end * scale)
        first = self.base_to_original(base_start)
        last = self.base_to_original(max(base_start, base_end - 1)) + 1
        return first, max(first, last)


def _proximity_span(parts: dict[int, list[tuple[int, int, int]]], count: int, window: int):
    """The (start, end) of a window of ``window`` tokens holding every part, or None.

    Each part's positions are sorted by token once; every anchor then finds its nearest partner by bisection,
    so common words with many positions stay cheap.
    """
    if len(parts) < count:
        return None
    others = []
    for part in range(1, count):
        ordered = sorted(parts[part])
        others.append((ordered, [p[0] for p in ordered]))
    for token, start, end in parts[0]:
        lo_start, hi_end = start, end
        for ordered, tokens in others:
            index = bisect_left(tokens, token - window)
            if index >= len(tokens) or tokens[index] > token + window:
                break
            # the nearest partner within the window (the first one at or after the anchor, else the last before)
            after = bisect_left(tokens, token, index)
            best = ordered[after] if after < len(tokens) and tokens[after] <= token + window else ordered[after - 1]
            lo_start, hi_end = min(lo_start, best[1]), max(hi_end, best[2])
        else:
            return lo_start, hi_end
    return None


def _scan_text(rs: Ruleset, text: str, direction: str, depth: int, origin: tuple[int, int] | None, prefix: str):
    """Match one text (the original or a decoded payload); returns (scan, span map, base, signals)."""
    scan = _Scan(rs, direction)
    base = nz.base_view(text)
    spans = _SpanMap(text, base)
    for view in nz.views(text, base):
        scan.run_view(view, prefix + view.name, origin)
    runs = nz.squash_runs(base)
    if runs:

        def origin_of(start: int, end: int) -> tuple[int, int]:
            if origin is not None:
                return origin
            return spans.base_to_original(start), spans.base_to_original(max(start, end - 1)) + 1

        def token_of(start: int) -> int:
            return len(nz.word_view(base[:start]).split())

        scan.run_squash(runs, prefix + "squash", prefix + "base", origin_of, token_of)
    return scan, spans, base


def _hits_for(scan: _Scan, spans: _SpanMap, text: str, base: str, direction: str) -> list[Hit]:
    rs = scan.rs
    hits: list[Hit] = []
    clean = None
    for index, compiled, prefilter in rs.regexes:
        if not scan.applies(index):
            continue
        # prefilter: alternatives separated by "|", each may need several literals joined by "&"
        if prefilter and not any(all(part in base for part in term.split("&")) for term in prefilter):
            continue
        if clean is None:
            clean = nz.clean_view(text[:REGEX_INPUT_CHARS])
        match = compiled.search(clean)
        if match:
            scan.found.setdefault(index, _Found()).views["base"] = (match.start(), match.end(), None, "regex")
    for index, parts in rs.proximity:
        entry = scan.found.get(index)
        if entry is None:
            continue
        for label, by_part in entry.parts.items():
            if len(by_part) < parts:
                continue
            by_part = {part: scan.tokens(label, positions) for part, positions in by_part.items()}
            got = _proximity_span(by_part, parts, rs.rules[index].window)
            if got is not None:
                start, end = got
                _start, _end, view, origin = entry.views["_prox_" + label]
                entry.views.setdefault(label, (start, end, view, origin))
    for index, entry in scan.found.items():
        labels = [label for label in entry.views if not label.startswith("_prox_")]
        if not labels:
            continue
        rule = rs.rules[index]
        label = "base" if "base" in labels else labels[0]
        start, end, view, origin = entry.views[label]
        if origin == "regex":
            # regex spans are in the clean view, which keeps one char per original char when ASCII
            scale = len(text) / max(1, len(nz.clean_view(text[:REGEX_INPUT_CHARS])))
            span = (start, end) if text.isascii() else (int(start * scale), int(end * scale))
        elif isinstance(origin, tuple):
            span = origin
        elif view is not None:
            span = spans.span(view, start, end)
        else:
            span = (0, len(text))
        severity = rule.severity
        hits.append(Hit(rule.rule_id, rule.reason_code, severity, rule.action, span[0], span[1], label, "", direction))
    return hits


def _scan_all(rs: Ruleset, text: str, direction: str) -> list[Hit]:
    text = nz.sanitize(text)
    scan, spans, base = _scan_text(rs, text, direction, 0, None, "")
    hits = _hits_for(scan, spans, text, base, direction)
    # Decoded payloads (base64, hex, tags, URL, HTML, bidi) are scanned as texts of their own, bounded in depth.
    queue = [(kind, decoded, start, end, 1) for kind, decoded, start, end in nz.payloads(text)]
    seen = 0
    while queue and seen < nz.MAX_PAYLOADS:
        kind, decoded, start, end, depth = queue.pop(0)
        seen += 1
        decoded = nz.sanitize(decoded[: nz.MAX_PAYLOAD_CHARS])
        sub_scan, sub_spans, sub_base = _scan_text(rs, decoded, direction, depth, (start, end), kind + ":")
        for hit in _hits_for(sub_scan, sub_spans, decoded, sub_base, direction):
            view = hit.view if hit.view.startswith(kind) else f"{kind}:{hit.view}"
            hits.append(Hit(hit.rule_id, hit.reason_code, hit.severity, hit.action, start, end, view, "", direction))
        if depth < nz.MAX_DECODE_DEPTH:
            queue.extend((f"{kind}:{k}", d, start, end, depth + 1) for k, d, _s, _e in nz.payloads(decoded))
    return _finish(rs, hits, text, base, direction, spans)


_OBFUSCATION_ACTION = {"refuse": "review", "review": "review", "log": "log"}


def _finish(rs: Ruleset, hits: list[Hit], text: str, base: str, direction: str, spans: _SpanMap) -> list[Hit]:
    # One hit per rule: the base view wins; a rule seen only in other views is an evasion.
    by_rule: dict[str, Hit] = {}
    for hit in hits:
        known = by_rule.get(hit.rule_id)
        if known is None or (hit.view == "base" and known.view != "base"):
            by_rule[hit.rule_id] = hit
    out: list[Hit] = []
    obfuscated: list[Hit] = []
    for hit in by_rule.values():
        if hit.view != "base" and hit.reason_code != "OBFUSCATION":
            raised = Hit(hit.rule_id, hit.reason_code, _raise(hit.severity), hit.action, hit.start, hit.end,
                         hit.view, "", direction)  # fmt: skip
            out.append(raised)
            obfuscated.append(raised)
        else:
            out.append(hit)
    if obfuscated:
        strongest = max(obfuscated, key=lambda h: (ACTION_RANK[h.action], SEVERITY_RANK[h.severity]))
        action = _OBFUSCATION_ACTION[strongest.action]
        out.append(Hit("obfuscation.evasive_match", "OBFUSCATION", strongest.severity, action, strongest.start,
                       strongest.end, strongest.view, "", direction))  # fmt: skip
    for signal in nz.signals(text, base):
        if signal.name in ("leetspeak", "letter_spacing"):
            start = spans.base_to_original(signal.start)
            end = spans.base_to_original(max(signal.start, signal.end - 1)) + 1
        else:
            start, end = signal.start, signal.end
        action = "review" if signal.strength >= 2 else "log"
        severity = "medium" if signal.strength >= 2 else "low"
        out.append(Hit(f"obfuscation.{signal.name}", "OBFUSCATION", severity, action, start, end, "signal", "",
                       direction))  # fmt: skip
    # Weighted signal rules: several weak signs of one kind add up to a review.
    scores: dict[str, int] = {}
    weighted: dict[str, list[Hit]] = {}
    for hit in out:
        weight = rs.weights.get(hit.rule_id, 0)
        if weight:
            scores[hit.reason_code] = scores.get(hit.reason_code, 0) + weight
            weighted.setdefault(hit.reason_code, []).append(hit)
    for code, score in scores.items():
        if score >= SCORE_THRESHOLD:
            group = weighted[code]
            severity = max((h.severity for h in group), key=SEVERITY_RANK.__getitem__)
            severity = _raise(severity) if score >= 2 * SCORE_THRESHOLD else severity
            out.append(Hit(f"score.{code.lower()}", code, severity, "review", min(h.start for h in group),
                           max(h.end for h in group), "score", "", direction))  # fmt: skip
    # A weighted log rule is a signal: it shows in the verdict only when its code's score escalated, so
    # everyday words ("write", "game") do not turn most prompts into "log" verdicts.
    out = [h for h in out if not (h.action == "log" and rs.weights.get(h.rule_id) and scores[h.reason_code] <
                                  SCORE_THRESHOLD)]  # fmt: skip
    out.sort(key=lambda h: (h.start, h.rule_id))
    return out


ERROR_RULE_ID = "engine.error"


def check(
    text: str, direction: str, ruleset: Ruleset | None = None, *, classifier: Classifier | None = None
) -> Verdict:
    """Scan ``text`` for ``direction`` ("prompt" or "output"); never raises on any ``str``.

    ``classifier`` (or the ruleset's) is an optional extra detector, e.g. a small offline ML model, called as
    ``classifier(text, direction)`` and returning hits of the same shape; it is off by default.
    """
    ruleset = ruleset or default_ruleset()  # compiled once per process, outside the timed part
    started = time.perf_counter()
    try:
        hits = _scan_all(ruleset, text if isinstance(text, str) else str(text or ""), direction)
        extra = classifier or ruleset.classifier
        if extra is not None:
            hits.extend(extra(text, direction))
    except Exception:  # fail closed: a detector bug must send the text to a human, never let it through unseen
        hits = [Hit(ERROR_RULE_ID, "UNCLASSIFIED_REVIEW", "medium", "review", 0, 0, "error", "", direction)]
    action = max((h.action for h in hits), key=ACTION_RANK.__getitem__, default="pass")
    elapsed = int((time.perf_counter() - started) * 1_000_000)
    return Verdict(action=action, hits=tuple(hits), elapsed_us=elapsed, ruleset_version=ruleset.version)
