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
from functools import lru_cache, partial
from itertools import accumulate, compress

import ahocorasick

from safety_admin.detectors import normalize as nz
from safety_admin.detectors.types import ACTION_RANK, SEVERITIES, SEVERITY_RANK, Hit, Rule, Verdict

SCORE_THRESHOLD = 3  # summed weight of distinct signal rules of one reason code that escalates to review
REGEX_INPUT_CHARS = 20_000  # regexes see at most this much of a text (head), bounding backtracking
PROXIMITY_MAX_POSITIONS = 64
PART_WORD = -1
_SPACE_RE = re.compile(" ")
_PLUS_ONE = (1).__add__
_WORD_RE = re.compile("[a-z0-9]+")


def _literal_test(literal: str) -> tuple[str, tuple[str, ...], bool]:
    """How a prefilter literal is tested: (literal, words, exact). Its words of letters and digits (3 or more
    long; shorter ones would match everywhere) must all be among the base view's automaton literals; when
    the literal is one such word that is the whole test (exact), else ``literal in base`` decides."""
    if _WORD_RE.fullmatch(literal):
        return literal, (literal,), True
    return literal, tuple(word for word in _WORD_RE.findall(literal) if len(word) >= 3), False


# Automaton values hold the refs of each direction apart (see _build): a check reads the refs of its own
# direction, so rules of the other direction cost nothing. Any other direction string reads the refs of rules
# whose direction is neither "prompt" nor "output" and filters them with Rule.applies_to.
_SLOT = {"prompt": 1, "output": 3}
_OTHER_SLOT = 6
_DIRECTION_BIT = {"prompt": 2, "output": 4}
_OTHER_BIT = 8
# pyahocorasick stores ints as signed 32-bit: a coded key packs 20 bits of rule index, 7 of key length, 4 flags
_LENGTH_BITS = 7
_INDEX_LIMIT = 1 << (31 - 4 - _LENGTH_BITS)
_KEY_LENGTH_LIMIT = 1 << _LENGTH_BITS

Classifier = Callable[[str, str], Iterable[Hit]]


@dataclass(frozen=True)
class Ruleset:
    """Compiled, immutable rules; safe to share between threads (nothing mutates it after compile)."""

    version: str
    rules: tuple[Rule, ...]
    automaton: object = None
    squash_automaton: object = None
    values: tuple = ()  # the automaton's shared values (see _build)
    squash_values: tuple = ()
    regexes: tuple[tuple[int, re.Pattern, tuple[str, ...]], ...] = ()
    proximity: tuple[tuple[int, int], ...] = ()  # (rule index, number of parts)
    term_count: int = 0
    weights: dict = field(default_factory=dict, compare=False, hash=False)
    classifier: Classifier | None = field(default=None, compare=False)
    # derived at compile time: {direction: regexes that apply}, {proximity rule index: number of parts}
    regexes_for: dict = field(default_factory=dict, compare=False, hash=False)
    proximity_parts: dict = field(default_factory=dict, compare=False, hash=False)
    proximity_full: dict = field(default_factory=dict, compare=False, hash=False)  # index -> all parts' bits


def _split_alternatives(pattern: str) -> list[str]:
    if "|" not in pattern:  # almost every blocklist term: no list comprehension over one part
        pattern = pattern.strip()
        return [pattern] if pattern else []
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
    flags = _DirectionFlags(rules)
    keys = _Builder(flags)
    squash_keys = _Builder(flags)
    regexes = []
    proximity = []
    literals = set(nz.ROT13_LITERALS)
    add_word, squash_word = keys.add_word, squash_keys.add_word

    def add(key: str, ref: tuple[int, int]) -> None:
        keys.add(key, ref)
        squashed = key.replace(" ", "")  # a key is a normalized term, at most padded with spaces
        if len(squashed) >= 4:
            squash_keys.add(squashed, ref)

    for index, rule in enumerate(rules):
        if rule.match_type == "regex":
            try:
                compiled = re.compile(rule.pattern, re.IGNORECASE)
            except (re.error, TypeError, ValueError, OverflowError, RecursionError):
                continue
            # alternatives separated by "|", each may need several literals joined by "&"
            prefilter = tuple(
                tuple(_literal_test(literal) for literal in nz.base_view(t).split("&"))
                for t in _split_alternatives(rule.prefilter)
            )
            regexes.append((index, compiled, prefilter))
            literals.update(
                word for alternative in prefilter for _literal, words, _exact in alternative for word in words
            )
        elif rule.match_type == "proximity":
            parts = [_split_alternatives(part) for part in rule.pattern.split("~")]
            parts = [p for p in parts if p]
            if len(parts) < 2:
                continue
            for part_index, terms in enumerate(parts):
                for term in terms:
                    key = _term_key(term, "word")
                    if key:
                        add(key, (index, part_index))
            proximity.append((index, len(parts)))
        else:  # the bulk of a big blocklist: add(key, (index, PART_WORD)) without the calls in between
            for term in _split_alternatives(rule.pattern):
                key = _term_key(term, rule.match_type)
                if key:
                    add_word(key, index)
                    squashed = key.replace(" ", "")
                    if len(squashed) >= 4:
                        squash_word(squashed, index)
    term_count = keys.count
    automaton, values = keys.finish(literals)
    squash_automaton, squash_values = squash_keys.finish()
    return Ruleset(
        version=version,
        rules=rules,
        automaton=automaton,
        squash_automaton=squash_automaton,
        values=values,
        squash_values=squash_values,
        regexes=tuple(regexes),
        proximity=tuple(proximity),
        term_count=term_count,
        weights={rule.rule_id: rule.weight for rule in rules if rule.weight},
        classifier=classifier,
        regexes_for={
            direction: tuple(entry for entry in regexes if rules[entry[0]].applies_to(direction)) for direction in _SLOT
        },
        proximity_parts=dict(proximity),
        proximity_full={index: (1 << parts) - 1 for index, parts in proximity},
    )


class _DirectionFlags:
    """Per rule: whether it applies to prompts, to outputs, whether its direction is neither ("other"), and
    whether its direction is one of the usual three (only those are coded into an automaton int)."""

    def __init__(self, rules: tuple[Rule, ...]):
        self.prompt = [rule.applies_to("prompt") for rule in rules]
        self.output = [rule.applies_to("output") for rule in rules]
        self.other = [rule.direction not in ("prompt", "output") for rule in rules]
        self.usual = [rule.direction in ("prompt", "output", "both") for rule in rules]
        # the low bits of a coded key's int (see _Builder); 0 for a rule whose refs are never coded
        self.bits = [
            usual and (other << 3 | output << 2 | prompt << 1 | 1)
            for usual, other, output, prompt in zip(self.usual, self.other, self.output, self.prompt, strict=True)
        ]


class _Builder:
    """Builds one automaton of int values from keys as they arrive (in rule order), with the tuple of shared
    values those ints point to; no per-key Python object outlives the compile, and most never exist.

    A key with one word ref whose rule has a usual direction (the whole of a big blocklist) is coded in its
    int: ``(rule index << 7 | key length) << 4 | other << 3 | output << 2 | prompt << 1 | 1``, for indexes
    below 2**20 and keys below 128 characters (the automaton stores signed 32-bit ints). Any other key's
    int is ``i << 1``: values[i] is (key length, prompt word refs, prompt part refs, output word refs,
    output part refs, literal, other word refs, other part refs), where word refs are rule indexes, part
    refs (rule index, 1 << proximity part), each in rule order, "other" refs those of rules whose direction
    is neither prompt nor output, and ``literal`` the key itself when it is one of the literals (prefilter
    and rot13 words looked up in the same pass, keyed without padding so they match inside words like
    ``in`` does), else None. Equal values share one int, as equal value tuples did.
    """

    def __init__(self, flags: _DirectionFlags):
        self.flags = flags
        self.count = 0  # distinct keys
        # key -> its int, for keys coded in their int; they go into the automaton when it is made (a dict
        # lookup per key instead of a walk down the trie)
        self.coded: dict[str, int] = {}
        self.listed: dict[str, list[tuple[int, int]]] = {}  # keys that are not coded in their int

    def add_word(self, key: str, index: int) -> None:
        """``add(key, (index, PART_WORD))``: the only kind of ref that is coded in its int (a 100k-term list makes
        200k of these calls)."""
        code = self.coded.get(key)
        if code is None:
            listed = self.listed.get(key)
            if listed is not None:
                listed.append((index, PART_WORD))
                return
            self.count += 1
            bits = self.flags.bits[index]
            if bits and len(key) < _KEY_LENGTH_LIMIT and index < _INDEX_LIMIT:
                self.coded[key] = (index << _LENGTH_BITS | len(key)) << 4 | bits
            else:
                self.listed[key] = [(index, PART_WORD)]
            return
        # a second ref for a coded key: list both (the coded one is a word ref, its index in the high bits)
        del self.coded[key]
        self.listed[key] = [(code >> (_LENGTH_BITS + 4), PART_WORD), (index, PART_WORD)]

    def add(self, key: str, ref: tuple[int, int]) -> None:
        index, part = ref
        if part == PART_WORD:
            self.add_word(key, index)
            return
        listed = self.listed.get(key)
        if listed is not None:
            listed.append(ref)
            return
        code = self.coded.pop(key, None)
        if code is None:
            self.count += 1
            self.listed[key] = [ref]  # a proximity part is never coded
        else:
            self.listed[key] = [(code >> (_LENGTH_BITS + 4), PART_WORD), ref]

    def finish(self, literals: Iterable[str] = ()):
        flags, coded, listed = self.flags, self.coded, self.listed
        literals = set(literals)
        for literal in literals:
            if literal not in listed:
                code = coded.pop(literal, None)
                listed[literal] = [] if code is None else [(code >> (_LENGTH_BITS + 4), PART_WORD)]
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        add_word = automaton.add_word
        for key, code in coded.items():
            add_word(key, code)
        self.coded = {}
        values: list[tuple] = []
        codes: dict[tuple, int] = {}  # equal values share one code, so a check merges their matches as one key
        interned: dict[tuple, tuple] = {}
        for key, refs in listed.items():
            value: list = [len(key)]
            for applies in (flags.prompt, flags.output, None, flags.other):
                if applies is None:
                    value.append(key if key in literals else None)
                    continue
                words = tuple(index for index, part in refs if part == PART_WORD and applies[index])
                parts = tuple((index, 1 << part) for index, part in refs if part != PART_WORD and applies[index])
                value.append(interned.setdefault(words, words))
                value.append(interned.setdefault(parts, parts))
            automaton.add_word(key, _code_of(tuple(value), codes, values))
        self.listed = {}
        if len(automaton):
            automaton.make_automaton()
            return automaton, tuple(values)
        return None, ()


def _code_of(value: tuple, codes: dict[tuple, int], values: list[tuple]) -> int:
    code = codes.get(value)
    if code is None:
        code = codes[value] = len(values) << 1
        values.append(value)
    return code


def default_rules() -> list[Rule]:
    """Every rule of every shipped pack, in pack order."""
    from safety_admin.detectors.packs import load_packs

    return [rule for rules in load_packs().values() for rule in rules]


@lru_cache(maxsize=1)
def default_ruleset() -> Ruleset:
    return compile_ruleset(default_rules(), version="builtin")


class _Found:
    """Where one rule matched: the first span per view label. ``key`` orders the hits as the rules were first
    touched (the text position of the first matching key, then rule order)."""

    __slots__ = ("key", "views")

    def __init__(self, key: tuple[int, int]) -> None:
        self.key = key
        self.views: dict[str, tuple] = {}  # label -> (start, end, view, origin) of the first match there


def _space_positions(text: str) -> list[int]:
    """The offsets of every " " in ``text``, from the lengths of its pieces (C loops, no match objects)."""
    pieces = text.split(" ")
    pieces.pop()
    return list(accumulate(map(_PLUS_ONE, map(len, pieces)), initial=-1))[1:]


_REGEX_TICK = 1 << 62  # regex hits are collected after every automaton match


class _Scan:
    """One check of one text: collects matches over every view, then turns them into hits.

    Word and substring refs become hits at once. Proximity parts cost one bit per (rule, view) while the
    automaton's matches are read: only a rule whose every part matched in one view has its match positions
    gathered (``proximity``), so the common words that proximity rules pair up stay cheap.
    """

    def __init__(self, ruleset: Ruleset, direction: str):
        self.rs = ruleset
        self.direction = direction
        slot = _SLOT.get(direction, _OTHER_SLOT)
        self.word_slot, self.part_slot = slot, slot + 1
        self.direction_bit = _DIRECTION_BIT.get(direction, _OTHER_BIT)
        self.filtered = direction not in _SLOT  # refs of an unknown direction are filtered rule by rule
        self.found: dict[int, _Found] = {}
        self._applies = {}
        # views where proximity parts matched: (label, view, origin, occurrences, part bits per rule, first tick)
        self.calls: list[tuple] = []
        self.tick = 0  # one per distinct key read, so hits keep the order of their first match
        # squashed runs' proximity parts: rule index -> [{part bit: positions}, origin of the first, key]
        self.squash_label = ""
        self.squash_parts: dict[int, list] = {}
        self._spaces: dict[str, list[int]] = {}
        self.present: set[str] | None = None  # literals (see _build) of the base view, once it was scanned

    def tokens(self, label: str, text: str, items: list[tuple]) -> list[tuple[int, int, int]]:
        """(token index, start, end) per match: markers from run_view are expanded, squash positions kept."""
        out: list[tuple[int, int, int]] = []
        for item in items:
            if item[0] != -1:
                out.append(item)
                continue
            spaces = self._spaces.get(label)
            if spaces is None:  # token index = spaces before the match in the word view
                spaces = self._spaces[label] = _space_positions(text)
            _marker, length, ends = item
            out.extend((bisect_right(spaces, end - length + 1), end - length + 1, end + 1) for end in ends)
        return out

    def applies(self, index: int) -> bool:
        ok = self._applies.get(index)
        if ok is None:
            ok = self._applies[index] = self.rs.rules[index].applies_to(self.direction)
        return ok

    def entry(self, index: int, key: tuple[int, int]) -> _Found:
        entry = self.found.get(index)
        if entry is None:
            entry = self.found[index] = _Found(key)
        return entry

    def run_view(self, view: nz.View, label: str, origin: tuple[int, int] | None) -> None:
        automaton = self.rs.automaton
        if automaton is None:
            return
        # Phase 1 (tight loop): the end offsets of each distinct key. Common words match many times, so the
        # per-rule work of phase 2 is done once per distinct key, not once per occurrence.
        occurrences: dict[int, list[int]] = {}
        for end, code in automaton.iter(view.text):
            ends = occurrences.get(code)
            if ends is None:
                occurrences[code] = [end]
            elif len(ends) < PROXIMITY_MAX_POSITIONS:
                ends.append(end)
        values = self.rs.values
        if view.name == "base":
            self.present = {values[code >> 1][5] for code in occurrences if not code & 1} - {None}
        word_slot, part_slot, direction_bit, filtered = (
            self.word_slot,
            self.part_slot,
            self.direction_bit,
            self.filtered,
        )
        first_tick = tick = self.tick
        masks: dict[int, int] = {}
        for code, ends in occurrences.items():
            tick += 1
            if code & 1:  # one word ref, coded in the int (see _build)
                if not code & direction_bit:
                    continue
                index = code >> (_LENGTH_BITS + 4)
                if filtered and not self.applies(index):
                    continue
                length = (code >> 4) & ((1 << _LENGTH_BITS) - 1)
                entry = self.entry(index, (tick, index))
                if label not in entry.views:
                    entry.views[label] = (ends[0] - length + 1, ends[0] + 1, view, origin)
                continue
            value = values[code >> 1]
            if value[word_slot]:
                for index in value[word_slot]:
                    if filtered and not self.applies(index):
                        continue
                    entry = self.entry(index, (tick, index))
                    if label not in entry.views:
                        entry.views[label] = (ends[0] - value[0] + 1, ends[0] + 1, view, origin)
            for index, bit in value[part_slot]:
                if filtered and not self.applies(index):
                    continue
                mask = masks.get(index)
                masks[index] = bit if mask is None else mask | bit
        self.tick = tick
        if masks:
            self.calls.append((label, view, origin, occurrences, masks, first_tick))

    def part_refs(self, code: int) -> tuple:
        """The proximity part refs of one automaton value, for this check's direction."""
        return () if code & 1 else self.rs.values[code >> 1][self.part_slot]

    def run_squash(self, runs, label: str, base_label: str, origin_of: Callable, token_of: Callable) -> None:
        automaton = self.rs.squash_automaton
        if automaton is None:
            return
        values = self.rs.squash_values
        word_slot, part_slot, direction_bit, filtered = (
            self.word_slot,
            self.part_slot,
            self.direction_bit,
            self.filtered,
        )
        self.squash_label = base_label
        for run, start, end in runs:
            for _end, code in automaton.iter(run):
                self.tick += 1
                if code & 1:
                    words, parts = ((code >> (_LENGTH_BITS + 4),) if code & direction_bit else ()), ()
                else:
                    value = values[code >> 1]
                    words, parts = value[word_slot], value[part_slot]
                for index in words:
                    if filtered and not self.applies(index):
                        continue
                    entry = self.entry(index, (self.tick, index))
                    if label not in entry.views:
                        entry.views[label] = (0, 0, None, origin_of(start, end))
                for index, bit in parts:
                    if filtered and not self.applies(index):
                        continue
                    # a squashed run is one token at its place in the base view; its parts join the base
                    # view's parts, so "disable the s m o k e d e t e c t o r s" still pairs up
                    got = self.squash_parts.get(index)
                    if got is None:
                        got = self.squash_parts[index] = [{}, origin_of(start, end), (self.tick, index)]
                    positions = got[0].setdefault(bit, [])
                    # both ends: the spaced letters each count as a token of the base view
                    positions.append((token_of(start), 0, 0))
                    positions.append((token_of(end), 0, 0))

    def proximity(self) -> None:
        """Add a view hit for every proximity rule whose parts all matched within its window in one view."""
        rs = self.rs
        full = rs.proximity_full
        by_label: dict[str, list[tuple]] = {}
        for call in self.calls:
            by_label.setdefault(call[0], []).append(call)
        squash_label = self.squash_label
        if self.squash_parts and squash_label not in by_label:
            by_label[squash_label] = []
        complete: dict[int, list[str]] = {}  # rule index -> labels where every part matched
        complete_in: dict[str, list[int]] = {}  # label -> those rules
        for label, calls in by_label.items():
            if len(calls) == 1:
                masks = calls[0][4]
            else:
                masks = {}
                for call in calls:
                    for index, bits in call[4].items():
                        masks[index] = masks.get(index, 0) | bits
            if label == squash_label and self.squash_parts:
                masks = dict(masks)
                for index, (parts, _origin, _key) in self.squash_parts.items():
                    for bit in parts:
                        masks[index] = masks.get(index, 0) | bit
            for index, bits in masks.items():
                if bits == full[index]:
                    complete.setdefault(index, []).append(label)
                    complete_in.setdefault(label, []).append(index)
        if not complete:
            return
        # Where each complete rule was first touched (its hit's order) and its (view, origin) per label.
        keys: dict[int, tuple[int, int]] = {}
        firsts: dict[int, dict[str, tuple]] = {index: {} for index in complete}
        pending = set(complete)
        for label, view, origin, occurrences, masks, tick in self.calls:
            for index in complete:
                if index in masks and label not in firsts[index]:
                    firsts[index][label] = (view, origin)
            need = pending.intersection(masks)
            if not need:
                continue
            for code in occurrences:
                tick += 1
                for ref, _bit in self.part_refs(code):
                    if ref in need:
                        keys[ref] = (tick, ref)
                        need.discard(ref)
                if not need:
                    break
            pending.difference_update(keys)
        for index in pending:
            keys[index] = self.squash_parts[index][2]
        # Match positions per part, gathered in one pass over each label's views for all its complete rules.
        spans: dict[tuple[int, str], tuple[int, int]] = {}
        for label, indexes in complete_in.items():
            calls = by_label[label]
            gathered: dict[int, dict[int, list]] = {index: {} for index in indexes}
            for call in calls:
                for code, ends in call[3].items():
                    for ref, bit in self.part_refs(code):
                        parts = gathered.get(ref)
                        if parts is not None:
                            parts.setdefault(bit, []).append((-1, self.rs.values[code >> 1][0], ends))
            # token positions are counted in the last view of this label where any part matched
            text = calls[-1][1].text if calls else ""
            for index, parts in gathered.items():
                squashed = self.squash_parts.get(index) if label == squash_label else None
                if squashed is not None:
                    for bit, positions in squashed[0].items():
                        parts.setdefault(bit, []).extend(positions)
                by_part = {bit.bit_length() - 1: self.tokens(label, text, items) for bit, items in parts.items()}
                got = _proximity_span(by_part, rs.proximity_parts[index], rs.rules[index].window)
                if got is not None:
                    spans[index, label] = got
        for index, labels in complete.items():
            by_view = firsts[index]
            order = list(by_view)
            # a rule's views in the order it was first seen in them; a view reached only by a squashed run last
            labels.sort(key=lambda lb: (lb not in by_view, order.index(lb) if lb in by_view else 0))
            for label in labels:
                got = spans.get((index, label))
                if got is None:
                    continue
                view, origin = by_view[label] if label in by_view else (None, self.squash_parts[index][1])
                self.entry(index, keys[index]).views.setdefault(label, (got[0], got[1], view, origin))


def _raise(severity: str, steps: int = 1) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, SEVERITY_RANK[severity] + steps)]


def _token_starts(base: str) -> list[int]:
    """Where each token (run of letters and digits, nz.TOKEN_RE) of ``base`` starts."""
    if base.isascii():  # the same tokens from C loops: pieces between separators, the empty ones dropped
        pieces = base.translate(nz.ASCII_SEPARATORS).split(" ")
        return list(compress(accumulate(map(_PLUS_ONE, map(len, pieces)), initial=0), pieces))
    return [m.start() for m in nz.TOKEN_RE.finditer(base)]


_UNSEEN = object()


class _SpanMap:
    """Maps offsets in a view back to the original text, computed only when a hit needs it."""

    def __init__(self, text: str, base: str):
        self.text = text
        self.base = base
        # Plain ASCII without ignorables: the base view is the text lowercased, one char for one char.
        self._identity = len(text) == len(base) and text.isascii()
        self._offsets: list[int] | None = None
        self._starts: dict[str, list[int] | None] = {}

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
        text = view.text
        starts = self._starts.get(text, _UNSEEN)
        if starts is _UNSEEN:
            # A base of words split by single spaces is its own word view minus the padding: offset - 1.
            plain = view.base and text[1:-1] == view.base
            starts = self._starts[text] = None if plain else _token_starts(view.base)
        if starts is None:
            return word_pos - 1
        k = text.count(" ", 0, word_pos + 1) - 1 if word_pos >= 0 else -1
        if k < 0 or k >= len(starts):
            return len(view.base) if k >= 0 else 0
        return starts[k] + (word_pos - text.rfind(" ", 0, word_pos + 1) - 1)

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


class _Pending:
    """A hit whose span in the original text is computed only if the hit survives ``_finish`` (most
    candidate hits are weak signals that are dropped, or payload hits that take the payload's span)."""

    __slots__ = ("_locate", "_span", "action", "reason_code", "rule_id", "severity", "view")

    def __init__(self, rule_id, reason_code, severity, action, view, span=None, locate=None):
        self.rule_id = rule_id
        self.reason_code = reason_code
        self.severity = severity
        self.action = action
        self.view = view
        self._span = span
        self._locate = locate

    @property
    def span(self) -> tuple[int, int]:
        if self._span is None:
            self._span = self._locate()
        return self._span


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
    for view in nz.views(text, base, rot13=False):
        scan.run_view(view, prefix + view.name, origin)
    if nz.wants_rot13(base, scan.present):  # the last view: the base view's pass told which cipher words occur
        scan.run_view(nz.rot13_view(base), prefix + "rot13", origin)
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


def _prefilter_passes(prefilter: tuple, base: str, present: set[str] | None) -> bool:
    """Whether one alternative of a regex rule's prefilter has all its literals in the base view."""
    for literals in prefilter:
        for literal, words, exact in literals:
            if present is None:
                if literal not in base:
                    break
            elif (words and not present.issuperset(words)) or not (exact or literal in base):
                break
        else:
            return True
    return False


def _hits_for(scan: _Scan, spans: _SpanMap, text: str, base: str, direction: str) -> list[_Pending]:
    rs = scan.rs
    hits: list[_Pending] = []
    clean = None
    regexes = rs.regexes_for.get(direction)
    if regexes is None:
        regexes = tuple(entry for entry in rs.regexes if scan.applies(entry[0]))
    for index, compiled, prefilter in regexes:
        if prefilter and not _prefilter_passes(prefilter, base, scan.present):
            continue
        if clean is None:
            clean = nz.clean_view(text[:REGEX_INPUT_CHARS])
        match = compiled.search(clean)
        if match:
            scan.entry(index, (_REGEX_TICK, index)).views["base"] = (match.start(), match.end(), None, "regex")
    if scan.calls or scan.squash_parts:
        scan.proximity()
    entries = sorted(scan.found.items(), key=lambda item: item[1].key) if len(scan.found) > 1 else scan.found.items()
    for index, entry in entries:
        views = entry.views
        if not views:
            continue
        rule = rs.rules[index]
        label = "base" if "base" in views else next(iter(views))
        start, end, view, origin = views[label]
        locate = None
        if origin == "regex":
            # regex spans are in the clean view, which keeps one char per original char when ASCII
            scale = len(text) / max(1, len(clean))
            span = (start, end) if text.isascii() else (int(start * scale), int(end * scale))
        elif isinstance(origin, tuple):
            span = origin
        elif view is not None:
            span = None
            locate = partial(spans.span, view, start, end)
        else:
            span = (0, len(text))
        hits.append(_Pending(rule.rule_id, rule.reason_code, rule.severity, rule.action, label, span, locate))
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
            hits.append(_Pending(hit.rule_id, hit.reason_code, hit.severity, hit.action, view, (start, end)))
        if depth < nz.MAX_DECODE_DEPTH:
            queue.extend((f"{kind}:{k}", d, start, end, depth + 1) for k, d, _s, _e in nz.payloads(decoded))
    return _finish(rs, hits, text, base, direction, spans)


_OBFUSCATION_ACTION = {"refuse": "review", "review": "review", "log": "log"}


def _finish(rs: Ruleset, hits: list[_Pending], text: str, base: str, direction: str, spans: _SpanMap) -> list[Hit]:
    # One hit per rule: the base view wins; a rule seen only in other views is an evasion.
    by_rule: dict[str, _Pending] = {}
    for hit in hits:
        known = by_rule.get(hit.rule_id)
        if known is None or (hit.view == "base" and known.view != "base"):
            by_rule[hit.rule_id] = hit
    out: list[_Pending] = []
    obfuscated: list[_Pending] = []
    for hit in by_rule.values():
        if hit.view != "base" and hit.reason_code != "OBFUSCATION":
            raised = _Pending(hit.rule_id, hit.reason_code, _raise(hit.severity), hit.action, hit.view, hit._span,
                              hit._locate)  # fmt: skip
            out.append(raised)
            obfuscated.append(raised)
        else:
            out.append(hit)
    if obfuscated:
        strongest = max(obfuscated, key=lambda h: (ACTION_RANK[h.action], SEVERITY_RANK[h.severity]))
        action = _OBFUSCATION_ACTION[strongest.action]
        out.append(_Pending("obfuscation.evasive_match", "OBFUSCATION", strongest.severity, action, strongest.view,
                            strongest.span))  # fmt: skip
    for signal in nz.signals(text, base):
        if signal.name in ("leetspeak", "letter_spacing"):
            start = spans.base_to_original(signal.start)
            end = spans.base_to_original(max(signal.start, signal.end - 1)) + 1
        else:
            start, end = signal.start, signal.end
        action = "review" if signal.strength >= 2 else "log"
        severity = "medium" if signal.strength >= 2 else "low"
        out.append(_Pending(f"obfuscation.{signal.name}", "OBFUSCATION", severity, action, "signal", (start, end)))
    # Weighted signal rules: several weak signs of one kind add up to a review.
    scores: dict[str, int] = {}
    weighted: dict[str, list[_Pending]] = {}
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
            span = (min(h.span[0] for h in group), max(h.span[1] for h in group))
            out.append(_Pending(f"score.{code.lower()}", code, severity, "review", "score", span))
    # A weighted log rule is a signal: it shows in the verdict only when its code's score escalated, so
    # everyday words ("write", "game") do not turn most prompts into "log" verdicts. Spans are computed
    # only now, for the hits that stay.
    out = [h for h in out if not (h.action == "log" and rs.weights.get(h.rule_id) and scores[h.reason_code] <
                                  SCORE_THRESHOLD)]  # fmt: skip
    out.sort(key=lambda h: (h.span[0], h.rule_id))
    return [Hit(h.rule_id, h.reason_code, h.severity, h.action, h.span[0], h.span[1], h.view, "", direction)
            for h in out]  # fmt: skip


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
