import pytest

from safety_admin.policies.validation import (
    MSG_BAD_PROXIMITY,
    MSG_BAD_VALUE,
    MSG_CATASTROPHIC,
    MSG_DUPLICATE_IN_FILE,
    MSG_DUPLICATE_IN_LIST,
    MSG_EMPTY,
    MSG_NO_TERM_COLUMN,
    MSG_NOT_UTF8,
    MSG_NOTE_TOO_LONG,
    MSG_NUL,
    MSG_TOO_LONG,
    MSG_UNKNOWN_COLUMNS,
    InvalidEntry,
    parse_blocklist,
    validate_regex,
)

DEFAULTS = {
    "reason_code": "HATE",
    "severity": "high",
    "action": "refuse",
    "match_type": "word",
    "direction": "prompt",
    "note": "",
}


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+$",
        r"(a*)*b",
        r"(?:\w+\s?)+x",
        r"(a|aa)*c",
        r"(\d+|\w+)*!",
        r"(ab|a)*c",
        r"^(([a-z])+.)+[A-Z]([a-z])+$",
        r"(x+x+)+y",
    ],
)
def test_validate_regex_rejects_catastrophic_backtracking(pattern):
    with pytest.raises(InvalidEntry) as exc:
        validate_regex(pattern)
    assert str(exc.value) == MSG_CATASTROPHIC


@pytest.mark.parametrize(
    "pattern",
    [
        r"\b(build|make|assemble)\b.{0,40}\b(pipe bomb|bomb)\b",
        r"\bAKIA[0-9A-Z]{16}\b",
        r"(foo|bar)+",
        r"a+b+c+",
        r"(ab){1,3}",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    ],
)
def test_validate_regex_accepts_linear_patterns(pattern):
    validate_regex(pattern)


def test_text_file_errors_carry_line_numbers():
    data = "\n".join(
        [
            "# weapons terms",  # 1 comment
            "ghost gun",  # 2 ok
            "",  # 3 blank: skipped
            "x" * 501,  # 4 too long
            "GHOST GUN",  # 5 duplicate of 2 (terms compare case-insensitively)
            "   ",  # 6 whitespace only
            "auto sear",  # 7 ok
        ]
    ).encode()
    report = parse_blocklist(
        data, filename="w.txt", defaults=DEFAULTS, existing={("auto sear", "word", "prompt"): "guns"}
    )
    assert report.errors == [
        (4, MSG_TOO_LONG),
        (5, MSG_DUPLICATE_IN_FILE.format(line=2)),
        (6, MSG_EMPTY),
        (7, MSG_DUPLICATE_IN_LIST.format(name="guns")),
    ]
    assert [(e.line, e.pattern, e.reason_code, e.action) for e in report.entries] == [
        (2, "ghost gun", "HATE", "refuse")
    ]


def test_csv_columns_override_defaults_and_bad_rows_are_reported():
    data = (
        b"term,match_type,reason_code,severity,action\n"  # 1
        b"sarin,word,HIGH_RISK_CHEM,critical,refuse\n"  # 2
        rb"(a+)+,regex,,,"
        b"\n"  # 3 catastrophic
        b"[unclosed,regex,,,\n"  # 4 bad regex
        b"foo,word,NOT_A_CODE,,\n"  # 5 bad reason code
        b"near ~ far,proximity,,,\n"  # 6 ok
        b"lonely,proximity,,,\n"  # 7 bad proximity
        b",word,,,\n"  # 8 empty
        b"tabun,,,low,\n"  # 9 ok, defaults fill the rest
    )
    report = parse_blocklist(data, filename="x.csv", defaults=DEFAULTS)
    assert [line for line, _ in report.errors] == [3, 4, 5, 7, 8]
    assert report.errors[0] == (3, MSG_CATASTROPHIC)
    assert report.errors[1][1].startswith("invalid regular expression: ")
    assert report.errors[2] == (
        5,
        MSG_BAD_VALUE.format(
            column="reason_code",
            allowed=", ".join(__import__("safety_admin.detectors", fromlist=["REASON_CODES"]).REASON_CODES),
            value="NOT_A_CODE",
        ),
    )
    assert report.errors[3:] == [(7, MSG_BAD_PROXIMITY), (8, MSG_EMPTY)]
    assert [(e.line, e.pattern, e.match_type, e.reason_code, e.severity, e.action) for e in report.entries] == [
        (2, "sarin", "word", "HIGH_RISK_CHEM", "critical", "refuse"),
        (6, "near ~ far", "proximity", "HATE", "high", "refuse"),
        (9, "tabun", "word", "HATE", "low", "refuse"),
    ]


def test_csv_without_term_column_and_non_utf8_are_refused():
    assert parse_blocklist(b"word,severity\nx,low\n", filename="a.csv", defaults=DEFAULTS).errors == [
        (1, MSG_UNKNOWN_COLUMNS.format(columns="word")),
        (1, MSG_NO_TERM_COLUMN),
    ]
    assert parse_blocklist(b"\xff\xfe bad", filename="a.txt", defaults=DEFAULTS).errors == [(0, MSG_NOT_UTF8)]


def test_nul_characters_and_long_notes_are_reported_not_stored():
    data = "term,note\nok,fine\nbad\x00term,\nother," + "n" * 501 + "\nlast,nul\x00note\n"
    report = parse_blocklist(data, filename="n.csv", defaults=DEFAULTS)
    assert report.errors == [(3, MSG_NUL), (4, MSG_NOTE_TOO_LONG), (5, MSG_NUL)]
    assert [(e.pattern, e.note) for e in report.entries] == [("ok", "fine")]
