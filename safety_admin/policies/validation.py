"""Validating entries and parsing blocklist files (plain text or CSV) with line-numbered errors."""

import csv
import io
import re
from dataclasses import dataclass, field

try:  # Python 3.11+ moved the regex parser; the names are the same.
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover
    import sre_constants
    import sre_parse

import safety_admin.detectors as detectors
from safety_admin.detectors import ACTIONS, DIRECTIONS, MATCH_TYPES, REASON_CODES, SEVERITIES
from safety_admin.policies.models import MAX_PATTERN_LENGTH, BlocklistEntry

MSG_EMPTY = "empty term"
MSG_TOO_LONG = f"term longer than {MAX_PATTERN_LENGTH} characters"
MSG_BAD_REGEX = "invalid regular expression: {error}"
MSG_CATASTROPHIC = "regular expression can backtrack catastrophically (nested or overlapping repetition)"
MSG_DUPLICATE_IN_FILE = "duplicate of line {line}"
MSG_DUPLICATE_IN_LIST = "already in list {name}"
MSG_BAD_VALUE = "{column} must be one of {allowed}, got {value!r}"
MSG_BAD_PROXIMITY = "proximity pattern must look like 'a|b ~ c|d'"
MSG_UNKNOWN_COLUMNS = "unknown CSV columns: {columns}"
MSG_NO_TERM_COLUMN = "CSV header must have a 'term' column"
MSG_NOT_UTF8 = "file is not UTF-8 text"
MSG_NUL = "contains a NUL character"
MAX_NOTE_LENGTH = BlocklistEntry._meta.get_field("note").max_length
MSG_NOTE_TOO_LONG = f"note longer than {MAX_NOTE_LENGTH} characters"

CSV_COLUMNS = ("term", "match_type", "reason_code", "severity", "action", "direction", "note")
VALUE_COLUMNS = ("match_type", "reason_code", "severity", "action", "direction")  # ParsedEntry's order
ALLOWED = {
    "match_type": MATCH_TYPES,
    "reason_code": REASON_CODES,
    "severity": SEVERITIES,
    "action": ACTIONS,
    "direction": DIRECTIONS,
}
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None))


class InvalidEntry(ValueError):
    """A pattern or field that cannot go into a list; ``str()`` is the message shown to the admin."""


def _unbounded(max_count) -> bool:
    return max_count is sre_constants.MAXREPEAT or max_count > 10


def _contains_repeat(items) -> bool:
    for op, av in items:
        if op in _REPEATS and _unbounded(av[1]):
            return True
        for sub in _children(op, av):
            if _contains_repeat(sub):
                return True
    return False


def _children(op, av) -> list:
    if op in _REPEATS:
        return [av[2]]
    if op == sre_constants.SUBPATTERN:
        return [av[-1]]
    if op == sre_constants.BRANCH:
        return list(av[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [av[1]]
    return []


def _first_literals(items) -> set | None:
    """The literal a branch starts with, or None when it can start with anything else."""
    for op, av in items:
        if op == sre_constants.LITERAL:
            return {av}
        if op == sre_constants.SUBPATTERN:
            return _first_literals(av[-1])
        return None
    return set()


def _overlapping_branch(items) -> bool:
    """An alternation whose alternatives can start the same way, e.g. ``(a|ab)`` or ``(\\w|\\d)``."""
    for op, av in items:
        if op == sre_constants.BRANCH:
            starts = [_first_literals(alt) for alt in av[1]]
            if any(s is None for s in starts):
                return True
            seen: set = set()
            for s in starts:
                if seen & s or not s:
                    return True
                seen |= s
        for sub in _children(op, av):
            if _overlapping_branch(sub):
                return True
    return False


def _catastrophic(items) -> bool:
    """True when an unbounded repeat contains another unbounded repeat or an overlapping alternation."""
    for op, av in items:
        if op in _REPEATS and _unbounded(av[1]):
            body = av[2]
            if _contains_repeat(body) or _overlapping_branch(body):
                return True
        for sub in _children(op, av):
            if _catastrophic(sub):
                return True
    return False


def validate_regex(pattern: str) -> None:
    """Compile ``pattern`` and reject shapes known to backtrack exponentially (``(a+)+``, ``(a|aa)*``…)."""
    external = getattr(detectors, "validate_pattern", None)
    try:
        re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise InvalidEntry(MSG_BAD_REGEX.format(error=exc)) from None
    if _catastrophic(list(parsed)):
        raise InvalidEntry(MSG_CATASTROPHIC)
    if external is not None:
        external(pattern, "regex")


def validate_columns(*, match_type: str, reason_code: str, severity: str, action: str, direction: str) -> None:
    for column, value in (
        ("match_type", match_type),
        ("reason_code", reason_code),
        ("severity", severity),
        ("action", action),
        ("direction", direction),
    ):
        if value not in ALLOWED[column]:
            raise InvalidEntry(MSG_BAD_VALUE.format(column=column, allowed=", ".join(ALLOWED[column]), value=value))


def validate_pattern(pattern: str, match_type: str) -> str:
    """Check a term or pattern for ``match_type``; returns it stripped or raises InvalidEntry."""
    pattern = (pattern or "").strip()
    if not pattern:
        raise InvalidEntry(MSG_EMPTY)
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidEntry(MSG_TOO_LONG)
    if "\x00" in pattern:  # PostgreSQL text cannot hold it: refuse the line instead of failing the import
        raise InvalidEntry(MSG_NUL)
    if match_type == "regex":
        validate_regex(pattern)
    elif match_type == "proximity":
        sides = pattern.split("~")
        if len(sides) != 2 or not all(part.strip(" |") for part in sides):
            raise InvalidEntry(MSG_BAD_PROXIMITY)
    return pattern


def validate_entry(
    *, pattern: str, match_type: str, reason_code: str, severity: str, action: str, direction: str
) -> str:
    """Check one entry's fields; returns the normalized pattern or raises InvalidEntry."""
    validate_columns(
        match_type=match_type, reason_code=reason_code, severity=severity, action=action, direction=direction
    )
    return validate_pattern(pattern, match_type)


def dedupe_key(pattern: str, match_type: str, direction: str = "prompt") -> tuple[str, str, str]:
    """Entries are duplicates when they match the same way; terms compare case-insensitively."""
    return (pattern if match_type == "regex" else pattern.casefold(), match_type, direction)


@dataclass(slots=True)
class ParsedEntry:
    line: int
    pattern: str
    match_type: str
    reason_code: str
    severity: str
    action: str
    direction: str
    note: str = ""


@dataclass
class ImportReport:
    """The outcome of parsing a file: the valid entries and ``(line number, message)`` for every invalid line."""

    entries: list[ParsedEntry] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    imported: int = 0

    @property
    def clean(self) -> bool:
        return not self.errors


def _rows(text: str, csv_mode: bool, report: ImportReport):
    """Yield ``(line number, {column: value})`` from a text or CSV file."""
    if not csv_mode:
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not line or stripped.startswith("#"):
                continue  # blank lines and comments
            yield number, {"term": stripped}
        return
    reader = csv.reader(io.StringIO(text))
    header = None
    for row in reader:
        number = reader.line_num
        if not row or (row[0].lstrip().startswith("#") and header is not None):
            continue
        if header is None:
            header = [h.strip().lower() for h in row]
            unknown = [h for h in header if h not in CSV_COLUMNS]
            if unknown:
                report.errors.append((number, MSG_UNKNOWN_COLUMNS.format(columns=", ".join(unknown))))
            if "term" not in header:
                report.errors.append((number, MSG_NO_TERM_COLUMN))
            if report.errors:
                return
            continue
        yield number, {name: value.strip() for name, value in zip(header, row, strict=False)}


def looks_like_csv(filename: str, text: str) -> bool:
    if filename.lower().endswith(".csv"):
        return True
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    return first.strip().lower().startswith("term,") or first.strip().lower() == "term"


def parse_blocklist(
    data: bytes | str,
    *,
    filename: str = "",
    defaults: dict[str, str],
    existing: dict[tuple[str, str, str], str] | None = None,
) -> ImportReport:
    """Parse a blocklist file; ``defaults`` fill missing columns; ``existing`` maps dedupe keys to list names."""
    report = ImportReport()
    default_values = [defaults.get(col, "") for col in VALUE_COLUMNS]
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            report.errors.append((0, MSG_NOT_UTF8))
            return report
    else:
        text = data
    existing = existing or {}
    seen: dict[tuple[str, str, str], int] = {}
    columns_ok: set[tuple] = set()  # column combinations already checked (a text file has one)
    for number, row in _rows(text, looks_like_csv(filename, text), report):
        values = [row.get(col) or defaults.get(col, "") for col in VALUE_COLUMNS] if len(row) > 1 else default_values
        try:
            if (key := tuple(values)) not in columns_ok:
                validate_columns(**dict(zip(VALUE_COLUMNS, values, strict=True)))
                columns_ok.add(key)
            pattern = validate_pattern(row.get("term", ""), values[0])
            note = row.get("note", defaults.get("note", ""))
            if note and (len(note) > MAX_NOTE_LENGTH or "\x00" in note):
                raise InvalidEntry(MSG_NOTE_TOO_LONG if len(note) > MAX_NOTE_LENGTH else MSG_NUL)
        except InvalidEntry as exc:
            report.errors.append((number, str(exc)))
            continue
        key = (pattern if values[0] == "regex" else pattern.casefold(), values[0], values[4])
        if key in seen:
            report.errors.append((number, MSG_DUPLICATE_IN_FILE.format(line=seen[key])))
            continue
        if key in existing:
            report.errors.append((number, MSG_DUPLICATE_IN_LIST.format(name=existing[key])))
            continue
        seen[key] = number
        report.entries.append(ParsedEntry(number, pattern, *values, note))
    return report
