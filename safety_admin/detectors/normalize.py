"""Normalization views: several matching views of one text, each cheap and bounded.

The base view is: strip default-ignorable and tag characters -> NFKC -> casefold -> drop combining marks.
The other views (confusable-folded, leet-folded, separator-squashed, repeat-collapsed, rot13, decoded
payloads) are built from it only when the text shows the trait they undo, so ordinary prompts pay for one
or two views. Patterns go through the same base normalization when a ruleset compiles.
"""

import base64
import binascii
import html
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import filterfalse
from urllib.parse import unquote

MAX_SCAN_CHARS = 200_000  # longer texts are scanned at the head and the tail
MAX_DECODE_DEPTH = 2
MAX_PAYLOADS = 16
MAX_PAYLOAD_CHARS = 20_000

# Default_Ignorable_Code_Point (DerivedCoreProperties) plus blank-looking characters that are not in it.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
IGNORABLE = {cp: None for lo, hi in _IGNORABLE_RANGES for cp in range(lo, hi + 1)}
# Characters that hide inside words to split them for a matcher (zero-width, soft hyphen, joiners, fillers).
_IGNORABLE_CLASS = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _IGNORABLE_RANGES)
IGNORABLE_RE = re.compile(f"[{_IGNORABLE_CLASS}]")
IN_WORD_IGNORABLE_RE = re.compile(f"(?<=\\w)[{_IGNORABLE_CLASS}]+(?=\\w)")
TAG_RE = re.compile("[\U000e0020-\U000e007e]+")
# Combining diacritical blocks (accents, Zalgo stacks); marks of other blocks are kept, see docs/detectors.md.
COMBINING_RE = re.compile("[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
SURROGATE_RE = re.compile("[\ud800-\udfff]")

LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "|": "l", "0": "o", "5": "s",
                      "$": "s", "7": "t", "+": "t", "8": "b", "9": "g", "6": "g", "2": "z"})  # fmt: skip
LEET_L = str.maketrans({**{chr(k): v for k, v in LEET.items()}, "1": "l"})
# anchored at token starts (the lookbehind) so a long word is scanned once, not once per position
LEET_TOKEN_RE = re.compile(r"(?<![\w@$!|+])[\w@$!|+]*(?:[0-9@$!|+][a-z]|[a-z][0-9@$!|+])[\w@$!|+]*")
LEET_HINT_RE = re.compile(r"[0-9@$!|+](?:(?<=[a-z].)|(?=[a-z]))")  # one leading class: the fast scan path
LEET_STRONG_RE = re.compile(r"[0-9@$!|+][a-z]")  # a digit or symbol before a letter: "h4ck", not "utf8"
_LEET_RUN_RE = re.compile(r"[\w@$!|+]*")  # the characters of one LEET_TOKEN_RE token
ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZabcdefghijklm"
)
# The rot13 view is built when the text talks about a cipher (the usual "decode this rot13: ...") or has
# few e's (English has ~12 % e; rot13 of English ~2 %); plain prompts skip it.
_ROT13_WORDS = ("rot13", "rot 13", "rot-13", "caesar", "cipher", "decod", "decrypt", "encod", "encrypt", "shift")


# the same words grouped under a shared stem, so a plain text costs six substring searches, not ten
_ROT13_STEMS = (("rot", ("rot13", "rot 13", "rot-13")), ("caesar", ()), ("cipher", ()), ("cod", ("decod", "encod")),
                ("crypt", ("decrypt", "encrypt")), ("shift", ()))  # fmt: skip


@lru_cache(maxsize=64)
def leet_runs(text: str) -> tuple[tuple[int, int], ...]:
    """The (start, end) of every LEET_TOKEN_RE match of ``text``, found from the few LEET_HINT_RE positions.

    A LEET_TOKEN_RE match is a maximal run of ``[\\w@$!|+]`` holding a digit/symbol next to a letter, which
    is exactly a run holding a LEET_HINT_RE match; growing each hint to its run costs a few C calls per
    leet word, where the token regex backtracks through every word of the text.
    """
    runs: list[tuple[int, int]] = []
    hint = LEET_HINT_RE.search(text)
    if hint is None:
        return ()
    reverse = text[::-1]
    size = len(text)
    while hint is not None:
        at = hint.start()
        start = at - (_LEET_RUN_RE.match(reverse, size - at).end() - (size - at))
        end = _LEET_RUN_RE.match(text, at).end()
        runs.append((start, end))
        hint = LEET_HINT_RE.search(text, end)
    return tuple(runs)


def _translate_runs(text: str, runs: tuple[tuple[int, int], ...], table: dict) -> str:
    pieces: list[str] = []
    position = 0
    for start, end in runs:
        pieces.append(text[position:start])
        pieces.append(text[start:end].translate(table))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


# Words (letters and digits only) whose presence a caller can learn from its own automaton pass over the
# base view: a word of [a-z0-9] is in the base view exactly when it is in the word view built from it.
ROT13_LITERALS = ("rot", "caesar", "cipher", "decod", "encod", "decrypt", "encrypt", "shift")


def wants_rot13(base: str, present: set[str] | frozenset[str] | None = None) -> bool:
    """Whether to build the rot13 view; ``present``: which ROT13_LITERALS the base view holds, if known."""
    letters = len(base)
    if present is not None:
        if "rot" in present and ("rot13" in base or "rot 13" in base or "rot-13" in base):
            return True
        if any(word in present for word in ROT13_LITERALS[1:]):
            return True
        return letters >= 16 and base.count("e") < 0.04 * letters
    for stem, words in _ROT13_STEMS:
        if stem in base and (not words or any(word in base for word in words)):
            return True
    return letters >= 16 and base.count("e") < 0.04 * letters


SEPARATORS_RE = re.compile(r"[\W_]+")
TOKEN_RE = re.compile(r"[^\W_]+")
# Runs of single letters split by 1-3 separators: "b o m b", "b.o.m.b", "b-o-m-b".
# Cheap test for two single-character tokens in a row, before the full SQUASH_RE on ASCII text.
SQUASH_HINT_RE = re.compile(r"[^a-z0-9][a-z0-9][^a-z0-9]{1,3}[a-z0-9][^a-z0-9]")
SQUASH_RE = re.compile(r"(?<![^\W_])(?:[^\W_][\W_]{1,3}){3,}[^\W_](?![^\W_])")
REPEAT_RE = re.compile(r"([^\W\d_])\1{2,}")
REPEAT_HINT_RE = re.compile(r"(.)\1\1")  # 10x cheaper than REPEAT_RE; most texts stop here
BASE64_RE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}")
# Hex of text: every byte of printable ASCII starts with a digit nibble, so three digit-led pairs in a row.
HEX_HINT_RE = re.compile(r"\d[0-9a-fA-F](?:[ :,]|\\x)?\d[0-9a-fA-F](?:[ :,]|\\x)?\d[0-9a-fA-F]")
HEX_RE = re.compile(
    r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{16,}|(?:\\x[0-9A-Fa-f]{2}){8,}|(?:[0-9A-Fa-f]{2}[ :,]){7,}[0-9A-Fa-f]{2})"
    r"(?![0-9A-Za-z])"
)
PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")


def _class_table(*groups: tuple[str, str]) -> bytes:
    """A bytes.translate table: each (chars, class letter) group maps its ASCII chars, every other byte to " "."""
    table = bytearray(b" " * 256)
    for chars, letter in groups:
        for char in chars:
            table[ord(char)] = ord(letter)
    return bytes(table)


def classes(text: str, table: bytes) -> bytes:
    """``text`` as one class byte per UTF-8 byte: a C-speed pre-test before a regex that scans every position.

    Non-ASCII characters encode to bytes >= 0x80, which every table maps to " ", so a class pattern found in
    the result is a necessary condition for the regex it stands for, on any text.
    """
    return text.encode("utf-8", "surrogatepass").translate(table)


_LOWER, _UPPER, _DIGITS = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
_WORD_BITS = _class_table((_LOWER + _UPPER + _DIGITS, "\x01")).replace(b" ", b"\x00")  # SQUASH_RE's [^\W_]
_ALNUM_BITS = _class_table((_LOWER + _DIGITS, "\x01")).replace(b" ", b"\x00")  # SQUASH_HINT_RE's [a-z0-9]
_BASE64_CLASS = _class_table((_LOWER + _UPPER + _DIGITS + "+/_-", "b"))  # BASE64_RE's run characters
_HEX_CLASS = _class_table((_DIGITS, "d"), ("abcdefABCDEF", "h"), (" :,", "s"), ("\\", "\\"), ("x", "x"))
_HEX_HINT_CLASS_RE = re.compile(rb"d[dh](?:s|\\x)?d[dh](?:s|\\x)?d[dh]")  # HEX_HINT_RE in _HEX_CLASS bytes
_CASE_CLASS = _class_table((_LOWER, "a"), (_UPPER, "A"))  # _CASE_FLIP_RE's [a-z][A-Z]
_BASE64_RUN = b"b" * 16


def _base64_matches(text: str, ascii_text: bool):
    """BASE64_RE.finditer(text), with the regex only tried where the byte classes show a 16-character run.

    BASE64_RE can only match at the start of a maximal run of its characters (its look-behind excludes
    them), so on ASCII text (a byte per character) each run found by ``bytes.find`` is tried once and the
    search goes on after it; elsewhere the regex scans the text once a long run is known to exist.
    """
    cls = classes(text, _BASE64_CLASS)
    at = cls.find(_BASE64_RUN)
    if at < 0:
        return
    if not ascii_text:
        yield from BASE64_RE.finditer(text)
        return
    while at >= 0:
        match = BASE64_RE.match(text, at)
        if match is None:  # a run right after "=": skip all of it
            end = cls.find(b" ", at)
            at = -1 if end < 0 else cls.find(_BASE64_RUN, end)
            continue
        yield match
        at = cls.find(_BASE64_RUN, match.end())


def _single_pair(base: str) -> bool:
    """SQUASH_HINT_RE on an ASCII text, in C: two single-character tokens at most three separators apart.

    One byte per character, 1 for ``[a-z0-9]`` else 0, read as one big integer: a byte is a single-character
    token when it is 1 and both neighbours are 0; two of them 2-4 bytes apart have only separators between
    them (the bytes next to each are 0, and a 1 in the middle of a 4-byte gap would itself be a single that
    pairs with both at distance 2).
    """
    bits = int.from_bytes(classes(base, _ALNUM_BITS), "big")
    single = bits & ~(bits << 8) & ~(bits >> 8)
    return bool(single & ((single >> 16) | (single >> 24) | (single >> 32)))


def _single_chain(base: str) -> bool:
    """Whether SQUASH_RE can match an ASCII text: four single characters (``[^\\W_]``), each 2-4 bytes after
    the previous one (as in _single_pair, a single inside a 4-byte gap only makes the chain denser)."""
    bits = int.from_bytes(classes(base, _WORD_BITS), "big")
    single = bits & ~(bits << 8) & ~(bits >> 8)
    chain = single
    for _ in range(3):  # chain: singles ending a chain of 2, 3, then 4
        chain = single & ((chain >> 16) | (chain >> 24) | (chain >> 32))
        if not chain:
            return False
    return True


def _has_triple(text: str) -> bool:
    """Whether some character occurs three times in a row (a necessary condition for REPEAT_RE), in C:
    XOR the text with itself shifted by one; equal neighbours give zero bytes, a triple two in a row."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 3:
        return False
    diff = int.from_bytes(raw[1:], "big") ^ int.from_bytes(raw[:-1], "big")
    return b"\0\0" in diff.to_bytes(len(raw) - 1, "big")


ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{2,8};")


def _load_confusables() -> dict[int, str]:
    """Map every character that Unicode lists as confusable with an ASCII letter or digit to that character."""
    table: dict[int, str] = {}
    try:
        import confusable_homoglyphs  # data package; optional at import so a bare checkout still scans

        path = confusable_homoglyphs.__file__.rsplit("/", 1)[0] + "/confusables.json"
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (ImportError, OSError, ValueError):
        data = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            target = glyph.get("c", "")
            if len(target) == 1 and target.isascii() and target.isalnum():
                table[ord(char)] = target.lower()
                break
    # Symbol alphabets NFKC leaves alone: small capitals, negative squared and regional-indicator letters.
    small_caps = (
        "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
        "\u0274\u1d0f\u1d18\u01eb\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u0078\u028f\u1d22"
    )
    for index, char in enumerate(small_caps):
        table.setdefault(ord(char), chr(ord("a") + index))
    for base in (0x1F130, 0x1F150, 0x1F170, 0x1F1E6):
        for index in range(26):
            table[base + index] = chr(ord("a") + index)
    for digit in "0123456789":
        table.pop(ord(digit), None)
    return table


CONFUSABLES = _load_confusables()
CONFUSABLE_CHARS = frozenset(chr(cp) for cp in CONFUSABLES)
CONFUSABLE_RE = re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(CONFUSABLES)) + "]")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char).casefold()
    decomposed = unicodedata.normalize("NFD", folded)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def sanitize(text: str) -> str:
    """Make any ``str`` safe to process: lone surrogates become U+FFFD; bounded length (head + tail)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if len(text) > MAX_SCAN_CHARS:
        half = MAX_SCAN_CHARS // 2
        text = text[:half] + "\n" + text[-half:]
    if not text.isascii() and SURROGATE_RE.search(text):
        text = SURROGATE_RE.sub("\ufffd", text)
    return text


def strip_ignorables(text: str) -> str:
    # a regex search + sub beats str.translate with a 4k-entry table on non-ASCII text
    if text.isascii() or not IGNORABLE_RE.search(text):
        return text
    return IGNORABLE_RE.sub("", text)


def base_view(text: str) -> str:
    """decode -> strip ignorables and tags -> NFKC -> casefold -> strip combining marks."""
    stripped = strip_ignorables(text)
    if stripped.isascii():
        return stripped.lower()
    folded = unicodedata.normalize("NFKC", stripped).casefold()
    decomposed = unicodedata.normalize("NFD", folded)
    if decomposed.isascii():
        return decomposed
    return unicodedata.normalize("NFC", COMBINING_RE.sub("", decomposed))


def clean_view(text: str) -> str:
    """Ignorables stripped and NFKC, case kept: what regex rules (secrets, code) run on."""
    stripped = strip_ignorables(text)
    return stripped if stripped.isascii() else unicodedata.normalize("NFKC", stripped)


def normalize_term(term: str) -> str:
    """A pattern in the same space as the word view: base view, separators collapsed to one space."""
    return SEPARATORS_RE.sub(" ", base_view(term)).strip()


ASCII_SEPARATORS = _ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


def word_view(base: str) -> str:
    """Pad and collapse separators so that `` term `` matches with word-boundary semantics."""
    if base.isascii():  # translate + split is about 4x faster than the regex on ASCII text
        spaced = base.translate(_ASCII_SEPARATORS)
        # words split by single spaces need no split and join (the same result, minus 400 small strings)
        return " " + (" ".join(spaced.split()) if "  " in spaced else spaced.strip(" ")) + " "
    return " " + SEPARATORS_RE.sub(" ", base).strip() + " "


_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]+")


def base_offsets(text: str) -> tuple[str, list[int]]:
    """The base view rebuilt piece by piece with the original index of each output char (for spans).

    ASCII stretches map one to one; only non-ASCII runs are folded char by char.
    """
    out: list[str] = []
    offsets: list[int] = []
    position = 0
    for match in _NON_ASCII_RE.finditer(text):
        if match.start() > position:
            out.append(text[position : match.start()].lower())
            offsets.extend(range(position, match.start()))
        for index in range(match.start(), match.end()):
            char = text[index]
            if ord(char) in IGNORABLE:
                continue
            folded = _fold_char(char)
            out.append(folded)
            offsets.extend([index] * len(folded))
        position = match.end()
    if position < len(text):
        out.append(text[position:].lower())
        offsets.extend(range(position, len(text)))
    return "".join(out), offsets


@dataclass(frozen=True)
class View:
    """One matching view: ``text`` is the padded word view; spans map back through ``origin``."""

    name: str
    text: str
    origin: tuple[int, int] | None = None  # a fixed span in the original (decoded payloads, squash runs)
    base: str = ""  # the unpadded text the word view came from, for mapping spans


@dataclass(frozen=True)
class Signal:
    """An obfuscation trait of the text itself, reported as an OBFUSCATION hit."""

    name: str
    start: int
    end: int
    strength: int


def _looks_like_text(text: str) -> bool:
    """Decoded bytes worth scanning: printable and mostly letters (not binary or random data)."""
    text = text.translate(IGNORABLE)
    if not text:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    letters = sum(1 for c in text if c.isalpha())
    return printable / len(text) > 0.95 and letters / len(text) > 0.2


def _decode_base64(run: str) -> str:
    padded = run + "=" * (-len(run) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return ""
    if not _looks_like_text(decoded):
        return ""
    # words, or another layer of base64 (decoded again, up to MAX_DECODE_DEPTH)
    return decoded if " " in decoded.strip() or BASE64_RE.fullmatch(decoded.strip()) else ""


def _decode_hex(run: str) -> str:
    digits = re.sub(r"\\x|0x|[\s:,]", "", run)
    try:
        decoded = bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""
    return decoded if _looks_like_text(decoded) else ""


def payloads(text: str) -> list[tuple[str, str, int, int]]:
    """Decoded hidden channels of ``text``: (kind, decoded text, start, end) with bounded count and size."""
    found: list[tuple[str, str, int, int]] = []
    ascii_text = text.isascii()
    for match in () if ascii_text else TAG_RE.finditer(text):
        if match.end() - match.start() >= 3:
            decoded = "".join(chr(ord(c) - 0xE0000) for c in match.group())
            found.append(("tags", decoded, match.start(), match.end()))
    for match in _base64_matches(text, ascii_text):
        run = match.group()
        if not (any(c.isdigit() or c in "+/=" for c in run) or (run != run.lower() and run != run.upper())):
            continue
        decoded = _decode_base64(run[:MAX_PAYLOAD_CHARS])
        if decoded:
            found.append(("base64", decoded, match.start(), match.end()))
        if len(found) >= MAX_PAYLOADS:
            return found
    if ascii_text:  # HEX_HINT_RE on byte classes: its leading literal lets the regex skip to each digit
        hex_classes = classes(text, _HEX_CLASS)
        hex_hint = b"d" in hex_classes and _HEX_HINT_CLASS_RE.search(hex_classes)
    else:
        hex_hint = HEX_HINT_RE.search(text)
    for match in HEX_RE.finditer(text) if hex_hint else ():
        decoded = _decode_hex(match.group()[:MAX_PAYLOAD_CHARS])
        if decoded:
            found.append(("hex", decoded, match.start(), match.end()))
    if "%" in text and len(PERCENT_RE.findall(text[:MAX_PAYLOAD_CHARS])) >= 3:
        decoded = unquote(text[:MAX_PAYLOAD_CHARS])
        if decoded != text[:MAX_PAYLOAD_CHARS]:
            found.append(("url", decoded, 0, min(len(text), MAX_PAYLOAD_CHARS)))
    if "&" in text and ENTITY_RE.search(text):
        decoded = html.unescape(text[:MAX_PAYLOAD_CHARS])
        if decoded != text[:MAX_PAYLOAD_CHARS]:
            found.append(("html", decoded, 0, min(len(text), MAX_PAYLOAD_CHARS)))
    if "\u202e" in text:
        found.append(("bidi", text[::-1][:MAX_PAYLOAD_CHARS], 0, len(text)))
    return found[:MAX_PAYLOADS]


def fold_confusables(text: str) -> str:
    """``text.translate(CONFUSABLES)``, translating only the non-ASCII runs: the table maps no ASCII character
    to anything but itself, and a 1,400-entry dict lookup per character is what made long texts slow."""
    if text.isascii():
        return text
    return _NON_ASCII_RE.sub(lambda m: m.group().translate(CONFUSABLES), text)


def rot13_view(base: str) -> View:
    rotated = base.translate(ROT13)
    return View("rot13", word_view(rotated), base=rotated)


def views(text: str, base: str, rot13: bool | None = None) -> list[View]:
    """Every cheap view of one (already sanitized) text, base first; ``rot13=False`` leaves the rot13 view
    (always the last one) to the caller, which may know wants_rot13() more cheaply."""
    out = [View("base", word_view(base), base=base)]
    # CONFUSABLE_RE.search(text), as set look-ups over the distinct characters (the class is 4,000 wide)
    if not base.isascii() and not CONFUSABLE_CHARS.isdisjoint(text):
        # fold look-alikes before casefolding: capital Greek/Cyrillic letters have their own confusables
        confusable = fold_confusables(base_view(fold_confusables(text)))
        if confusable != base:
            out.append(View("confusable", word_view(confusable), base=confusable))
    leet_source = out[-1].base
    runs = leet_runs(leet_source)
    if runs:
        leet = _translate_runs(leet_source, runs, LEET)
        if leet != leet_source:
            out.append(View("leet", word_view(leet), base=leet))
            # "1" and "|" stand for "l" as often as for "i": a second reading
            leet_l = _translate_runs(leet_source, runs, LEET_L)
            if leet_l != leet:
                out.append(View("leet", word_view(leet_l), base=leet_l))
    if squash_runs(base):
        # "l a u n d e r money" -> "launder money": spaced-out words become words again
        squashed = SQUASH_RE.sub(lambda m: " " + SEPARATORS_RE.sub("", m.group()) + " ", base)
        out.append(View("squash", word_view(squashed), base=squashed))
    if (_has_triple(base) if base.isascii() else REPEAT_HINT_RE.search(base)) and REPEAT_RE.search(base):
        out.append(View("repeat", word_view(REPEAT_RE.sub(r"\1", base)), base=REPEAT_RE.sub(r"\1", base)))
        out.append(View("repeat2", word_view(REPEAT_RE.sub(r"\1\1", base)), base=REPEAT_RE.sub(r"\1\1", base)))
    if rot13 if rot13 is not None else wants_rot13(base):
        out.append(rot13_view(base))
    return out


@lru_cache(maxsize=64)
def squash_runs(base: str) -> tuple[tuple[str, int, int], ...]:
    """Spaced-out letter runs of the base view, squashed together with the word before and after.

    "find c h i l d porn" gives "findchildporn": the spacing hides where words end, so the run automaton
    looks for terms anywhere inside it.
    """
    runs: list[tuple[str, int, int]] = []
    if base.isascii() and not (_single_pair(base) and _single_chain(base)):  # the hint, then SQUASH_RE's shape
        return ()
    for match in SQUASH_RE.finditer(base):
        before = base.rfind(" ", 0, max(0, match.start() - 1))
        after = base.find(" ", match.end() + 1)
        start = before + 1
        end = len(base) if after < 0 else after
        runs.append((SEPARATORS_RE.sub("", base[start:end]), match.start(), match.end()))
        if len(runs) >= 64:
            break
    return tuple(runs)


# Letters by script, for the mixed-script token signal.
_SCRIPT_RE = {
    "latin": re.compile(r"[a-zA-Z\u00c0-\u024f]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "greek": re.compile(r"[\u0370-\u03ff]"),
}
_GREEK_CYRILLIC_RE = re.compile("[\u0370-\u04ff]")
# a word holding both Latin and Greek/Cyrillic letters (a Cyrillic "a" inside "paypal")
_MIXED_SCRIPT_RE = re.compile(
    "[^\\W\\d_]*(?:[a-zA-Z][^\\W\\d_]*[\u0370-\u04ff]|[\u0370-\u04ff][^\\W\\d_]*[a-zA-Z])[^\\W\\d_]*"
)
_CASE_FLIP_RE = re.compile(r"[a-z][A-Z]")
_WORD3_RE = re.compile(r"\b[A-Za-z]{3,}\b")


_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")})


def _odd_case_words(text: str) -> tuple[list[str], Callable[[], int]]:
    """The _WORD3_RE words of ``text`` that are neither lower, upper nor title case, and a counter of all its
    _WORD3_RE words (only needed when three odd ones are found).

    On ASCII text the words are the \\w-runs made only of letters (``\\b`` excludes letters next to digits or
    "_"), taken from translate + split; the lowercase majority is dropped by a C-level filter first.
    """
    if not text.isascii():
        words = _WORD3_RE.findall(text)
        return [w for w in words if not (w.islower() or w.isupper() or w.istitle())], lambda: len(words)
    runs = text.translate(_ASCII_NON_WORD).split()
    odd = [
        w for w in filterfalse(str.islower, runs) if len(w) >= 3 and w.isalpha() and not (w.isupper() or w.istitle())
    ]
    return odd, lambda: sum(1 for w in runs if len(w) >= 3 and w.isalpha())


def _leet_word(word: str) -> bool:
    """A leetspeak word: a digit/symbol before a letter, all letters once folded, at least two real letters."""
    return bool(LEET_STRONG_RE.search(word)) and word.translate(LEET).isalpha() and sum(c.isalpha() for c in word) >= 2


def signals(text: str, base: str) -> list[Signal]:
    """Traits that only an evasion attempt leaves: smuggled tags, split words, mixed scripts, odd case, leet."""
    found: list[Signal] = []
    tags = None if text.isascii() else TAG_RE.search(text)
    if tags:
        found.append(Signal("tag_smuggling", tags.start(), tags.end(), 3))
    if not text.isascii():
        splits = IN_WORD_IGNORABLE_RE.findall(text)
        if len(splits) >= 2:
            first = IN_WORD_IGNORABLE_RE.search(text)
            found.append(Signal("invisible_split", first.start(), first.end(), 2 if len(splits) >= 3 else 1))
        mixed = list(_MIXED_SCRIPT_RE.finditer(text)) if _GREEK_CYRILLIC_RE.search(text) else []
        if mixed:
            found.append(Signal("mixed_script", mixed[0].start(), mixed[0].end(), 2 if len(mixed) >= 2 else 1))
    if b"aA" in classes(text, _CASE_CLASS) and _CASE_FLIP_RE.search(text):
        # rAnSoM-case: many words whose case flips inside them, not the odd camelCase name
        odd, words = _odd_case_words(text)
        if len(odd) >= 3:
            start = text.find(odd[0])
            strength = 2 if len(odd) / words() >= 0.4 else 1
            found.append(Signal("odd_case", start, start + len(odd[0]), strength))
    leet = [(start, end) for start, end in leet_runs(base) if _leet_word(base[start:end])]
    if len(leet) >= 2:
        found.append(Signal("leetspeak", leet[0][0], leet[0][1], 2 if len(leet) >= 3 else 1))
    runs = [r for r in squash_runs(base) if len(r[0]) >= 5]
    if runs:
        found.append(Signal("letter_spacing", runs[0][1], runs[0][2], 2 if len(runs) >= 2 else 1))
    return found
