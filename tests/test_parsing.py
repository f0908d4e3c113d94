"""Table-driven tests of the answer parsers: letters, words, quotes, markdown, both/neither, other scripts; and the
study's rule (D iff a standalone D, else C, with the C that no label supports marked "default")."""

from __future__ import annotations

import pytest

from tomarena.agents.llm.parsing import (
    ParseResult,
    parse_answer,
    parse_choice,
    parse_choice_study,
    parse_contribution,
    parse_contribution_study,
)
from tomarena.errors import ConfigError

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


# -- the study's rule ------------------------------------------------------------------------------------------
STUDY_CHOICES = [  # (text, action, status, why)
    ("I choose D.", D, "ok", "standalone D"),
    ("D", D, "ok", "standalone D"),
    ("  D", D, "ok", "standalone D"),
    ("**D**", D, "ok", "standalone D"),
    ("(D) because they will undercut.", D, "ok", "standalone D"),
    ("Option D is tempting but C", D, "ok", "standalone D"),  # any standalone D wins, as in the study
    ("I choose C, not D.", D, "ok", "standalone D"),
    ("C or D, hard to say.", D, "ok", "standalone D"),
    ("I choose C.", C, "ok", "standalone C, no standalone D"),
    ("C", C, "ok", "standalone C, no standalone D"),
    ("c", C, "default", "no standalone C or D: C by the study's rule"),  # the regex is case-sensitive
    ("d", C, "default", "no standalone C or D: C by the study's rule"),
    ("DC", C, "default", "no standalone C or D: C by the study's rule"),
    ("I'd rather not DEFECT.", C, "default", "no standalone C or D: C by the study's rule"),
    ("I refuse", C, "default", "no standalone C or D: C by the study's rule"),
    ("As an AI, I cannot take part in this scenario.", C, "default", "no standalone C or D: C by the study's rule"),
    ("\uff24", C, "default", "no standalone C or D: C by the study's rule"),  # full-width D is not D (raw text)
    ("", C, "default", "empty answer: C by the study's rule"),
    ("   ", C, "default", "empty answer: C by the study's rule"),
]


@pytest.mark.parametrize(("text", "action", "status", "why"), STUDY_CHOICES)
def test_parse_choice_study_table(text: str, action: int, status: str, why: str) -> None:
    assert parse_choice_study(text) == ParseResult(action, status, why)


def test_parse_choice_study_other_labels_and_bad_input() -> None:
    assert parse_choice_study("I hunt the Hare.", ("Stag", "Hare")) == ParseResult(1, "ok", "standalone Hare")
    assert parse_choice_study("Hares are fast.", ("Stag", "Hare")) == ParseResult(
        0, "default", "no standalone Stag or Hare: Stag by the study's rule")
    assert parse_choice_study("D", ("A", "B", "D")) == ParseResult(
        None, "failed", "the study rule needs exactly two labels, got 3")
    for bad in (None, 3, b"D"):
        assert parse_choice_study(bad) == ParseResult(None, "failed", f"not text: {type(bad).__name__}")  # type: ignore[arg-type]


STUDY_CONTRIBUTIONS = [  # (text, amount or None, why)
    ("I give 4 dollars.", 4, "first number"),
    ("7", 7, "first number"),
    ("$10", 10, "first number"),
    ("I give 3 dollars. If everyone gave 10 we would all earn 20.", 3, "first number"),
    ("Maybe 3, maybe 6.", 3, "first number"),
    ("I give 2.5 dollars.", 2, "first number"),  # the study's \d+ reads the 2
    ("0", 0, "first number"),
    ("I give 11 dollars.", None, "amount 11 is outside 0..10"),
    ("I keep everything.", None, "no amount found"),
    ("I will contribute five.", None, "no amount found"),
    ("9" * 5000, None, "an amount of 5000 digits cannot be read"),
]


@pytest.mark.parametrize(("text", "amount", "why"), STUDY_CONTRIBUTIONS)
def test_parse_contribution_study_table(text: str, amount: int | None, why: str) -> None:
    status = "failed" if amount is None else "ok"
    assert parse_contribution_study(text, endowment=10) == ParseResult(amount, status, why)


def test_parse_answer_dispatches_by_parser() -> None:
    assert parse_answer("I refuse", ("C", "D"), "study") == ParseResult(
        C, "default", "no standalone C or D: C by the study's rule")
    assert parse_answer("I refuse", ("C", "D"), "robust") == ParseResult(None, "failed", "no label found")
    assert parse_answer("Maybe 3, maybe 6.", ("C", "D"), "study", endowment=10) == ParseResult(3, "ok", "first number")
    assert parse_answer("Maybe 3, maybe 6.", ("C", "D"), "robust", endowment=10).status == "failed"
    with pytest.raises(ConfigError, match="^unknown parser 'loose'; allowed: robust, study$"):
        parse_answer("D", ("C", "D"), "loose")
