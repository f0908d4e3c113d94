"""Table-driven tests of the answer parsers: letters, words, quotes, markdown, both/neither, other scripts."""

from __future__ import annotations

import pytest

from tomarena.agents.parsing import parse_choice, parse_contribution

C, D, FAIL = 0, 1, None

CHOICES = [
    ("C", C),
    ("D", D),
    ("d", D),
    ("c.", C),
    ("I choose C.", C),
    ("I choose D.", D),
    ("i choose c because it pays", C),
    ("**D**", D),
    ("**I choose D.** Because the other side will undercut me.", D),
    ("  \n\n  C", C),
    ("# Answer\n\n> D", D),
    ('"C"', C),
    ("'D'", D),
    ("\u201cC\u201d", C),
    ("\u00ab D \u00bb", D),
    ("\u300cC\u300d", C),
    ("Strategy C", C),
    ("Option D is better for me.", D),
    ("I'll choose D this time.", D),
    ("I choose C, not D.", C),
    ("I choose D rather than C.", D),
    ("Not C. D.", D),
    ("My final answer is: C", C),
    ("Answer: D", D),
    ("\uff23", C),  # full-width C
    ("\u6211\u9009\u62e9\uff24\u3002", D),  # Chinese "I choose" + full-width D + ideographic full stop
    ("Ich w\u00e4hle \u201eC\u201c.", C),  # German quotes
    ("Je choisis \u00ab D \u00bb.", D),
    ("C - because mutual trust pays off over time.", C),
    ("`D`", D),
    ("I choose C. " + "The reasons are many. " * 2000, C),
    ("The reasons are many. " * 2000, FAIL),
    ("C or D, hard to say.", FAIL),
    ("I choose C or D.", FAIL),
    ("Both C and D have merits.", FAIL),
    ("I cannot decide.", FAIL),
    ("", FAIL),
    ("   ", FAIL),
    ("Defecting is tempting but cooperating feels right.", FAIL),
    ("I am choosing D.", D),
]


@pytest.mark.parametrize(("text", "expected"), CHOICES)
def test_parse_choice_table(text: str, expected: int | None) -> None:
    result = parse_choice(text)
    assert result.action == expected, (text[:60], result)
    assert result.status == ("failed" if expected is None else "ok")
    assert result.why


def test_parse_choice_other_labels_and_non_strings() -> None:
    assert parse_choice("I pick Stag", labels=("Stag", "Hare")).action == 0
    assert parse_choice("hare", labels=("Stag", "Hare")).action == 1
    for bad in (None, 3, b"C", ["C"]):
        r = parse_choice(bad)  # type: ignore[arg-type]
        assert r.status == "failed" and r.action is None and "not text" in r.why


def test_parse_choice_reasons() -> None:
    assert parse_choice("I choose C.").why == "stated choice"
    assert parse_choice("D").why == "whole answer"
    assert parse_choice("Both C and D").why == "both labels mentioned, no stated choice"
    assert parse_choice("nothing here").why == "no label found"


CONTRIBUTIONS = [
    ("I give 4 dollars.", 4),
    ("7", 7),
    ("$10", 10),
    ("10 dollars", 10),
    ("I give 0 dollars because others may not give.", 0),
    ("**I give 5 dollars.** Splitting the risk.", 5),
    ("I will contribute five.", 5),
    ("I give 11 dollars.", None),
    ("I give 2.5 dollars.", None),
    ("Maybe 3, maybe 6.", None),
    ("I keep everything.", None),
    ("\uff18", 8),  # full-width 8
    ("I give 3 dollars. If everyone gave 10 we would all earn 20.", 3),
]


@pytest.mark.parametrize(("text", "expected"), CONTRIBUTIONS)
def test_parse_contribution_table(text: str, expected: int | None) -> None:
    result = parse_contribution(text, endowment=10)
    assert result.action == expected, (text, result)
    assert result.status == ("failed" if expected is None else "ok")


def test_parse_contribution_reasons_and_non_strings() -> None:
    assert parse_contribution("I give 11 dollars.", 10).why == "amount 11 is outside 0..10"
    assert parse_contribution("I give 2.5 dollars.", 10).why == "amount 2.5 is not a whole number"
    assert parse_contribution(None, 10).status == "failed"  # type: ignore[arg-type]
    assert parse_contribution("", 10).why == "empty answer"
