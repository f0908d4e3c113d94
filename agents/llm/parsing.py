r"""Read a model's free-text answer: which option it chose (C/D or any labels) or how much it gave.

Two parsers, chosen per policy (`parser=robust|study`):
- robust (`parse_choice`, `parse_contribution`): an unreadable answer is a ParseResult with status "failed" and a
  short reason, so the policy can record it and apply its declared fallback. Order of evidence: a stated choice
  ("I choose C", "my answer: D") beats a bare label at the start, which beats a single label mentioned anywhere;
  two different labels without a stated choice fail.
- study (`parse_choice_study`, `parse_contribution_study`): the rule of Lore, Ilami & Heydari, applied to the raw
  text. The answer is D iff a standalone D appears (regex `\bD\b`, case-sensitive), else C. A C given without a
  standalone C in the text either (refusals, empty or unreadable replies) has status "default", so it is counted,
  not hidden. Donations: the first run of digits (`\d+`) is the amount.
Neither parser raises on a string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from tomarena.errors import ConfigError

PARSERS = ("robust", "study")
MAX_CHARS = 4000  # answers state their choice early; longer text is cut before matching
_QUOTES = "\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a\u300c\u300d\u300e\u300f"
_MARKUP = "*_#>~|[](){}" + _QUOTES
_STATE_VERBS = (
    r"\b(?:i\s*(?:will|would|'ll|ll|shall)?\s*(?:choose|chose|pick|select|opt\s+for|go\s+(?:with|for)|play|take)"
    r"|(?:my|final)\s+(?:final\s+)?(?:choice|answer|decision|pick)\s*(?:is|:|=|-)"
    r"|(?:answer|choice|decision)\s*[:=]"
    r"|i\s*(?:'m|m| am)\s+(?:choosing|picking|going\s+with))"
)
_NEGATORS = r"(?:not|never|no|instead\s+of|rather\s+than|over|avoid|against)"
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "nothing": 0}


@dataclass(frozen=True)
class ParseResult:
    """The parsed action (None on failure), status "ok", "default" (the parser's default rule chose the action:
    the study parser found no standalone D) or "failed", and why (which rule decided)."""

    action: int | None
    status: str
    why: str


def _fail(why: str) -> ParseResult:
    return ParseResult(None, "failed", why)


def normalize(text: str) -> str:
    """NFKC-fold (full-width letters and punctuation become ASCII), unify quotes, drop markdown marks."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    text = text.translate({ord(c): " " for c in _MARKUP})
    return re.sub(r"\s+", " ", text).strip()


def _label_alt(labels: Sequence[str]) -> str:
    return "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))


def _index(found: str, labels: Sequence[str]) -> int:
    lowered = [lab.lower() for lab in labels]
    return lowered.index(found.lower())


def _stated(text: str, labels: Sequence[str]) -> ParseResult | None:
    """A choice stated with a verb ("I choose C", "answer: D"), unless it is "C or D"."""
    alt = _label_alt(labels)
    pat = (rf"{_STATE_VERBS}\s*(?:option|strategy|letter|choice)?\s*({alt})(?![A-Za-z0-9])"
           rf"(?!\s*(?:or|and|/)\s*(?:option\s*|strategy\s*)?(?:{alt})(?![A-Za-z0-9]))")
    m = re.search(pat, text, flags=re.IGNORECASE)
    return ParseResult(_index(m.group(1), labels), "ok", "stated choice") if m else None


def _whole_or_leading(text: str, labels: Sequence[str]) -> ParseResult | None:
    """The answer is just a label ("d.", "C") or starts with an upper-case label ("C - because ...")."""
    alt = _label_alt(labels)
    m = re.fullmatch(rf"(?:option|strategy|letter)?\s*({alt})\s*[.!?:;,。!]*", text, flags=re.IGNORECASE)
    if m:
        return ParseResult(_index(m.group(1), labels), "ok", "whole answer")
    m = re.match(rf"(?:option |strategy )?({alt})(?![A-Za-z0-9'])(?!\s*(?:or|and|/)\s*(?:{alt})(?![A-Za-z0-9]))",
                 text)
    return ParseResult(_index(m.group(1), labels), "ok", "leading label") if m else None


def _mentions(text: str, labels: Sequence[str]) -> ParseResult:
    """A single distinct upper-case label mentioned (negated mentions like "not D" do not count)."""
    alt = _label_alt(labels)
    found = set()
    for m in re.finditer(rf"(?<![A-Za-z0-9'])({alt})(?![A-Za-z0-9'])", text):
        before = text[max(0, m.start() - 20):m.start()]
        if re.search(rf"\b{_NEGATORS}\s*(?:option\s*|strategy\s*|choosing\s*)?$", before, flags=re.IGNORECASE):
            continue
        found.add(_index(m.group(1), labels))
    if len(found) == 1:
        return ParseResult(found.pop(), "ok", "single label mentioned")
    return _fail("both labels mentioned, no stated choice" if found else "no label found")


def parse_choice(text: object, labels: Sequence[str] = ("C", "D")) -> ParseResult:
    """Which of `labels` the answer `text` chose; never raises (non-strings and empty text fail)."""
    if not isinstance(text, str):
        return _fail(f"not text: {type(text).__name__}")
    clean = normalize(text)
    if not clean:
        return _fail("empty answer")
    return _stated(clean, labels) or _whole_or_leading(clean, labels) or _mentions(clean, labels)


def _number(token: str) -> float | None:
    token = token.lower().replace(",", ".")
    if token in _WORDS:
        return float(_WORDS[token])
    try:
        return float(token)
    except ValueError:
        return None


def _checked(value: float | None, endowment: int, why: str) -> ParseResult:
    if value is None:
        return _fail("no amount found")
    if value != int(value):
        return _fail(f"amount {value:g} is not a whole number")
    if not 0 <= value <= endowment:
        return _fail(f"amount {value:g} is outside 0..{endowment}")
    return ParseResult(int(value), "ok", why)


_NUM = r"(\d+(?:[.,]\d+)?|" + "|".join(_WORDS) + r")"


def parse_contribution(text: object, endowment: int) -> ParseResult:
    """The whole amount 0..endowment that the answer gives ("I give 4 dollars.", "7", "$10"); never raises."""
    if not isinstance(text, str):
        return _fail(f"not text: {type(text).__name__}")
    clean = normalize(text).replace("$", " ")
    if not clean:
        return _fail("empty answer")
    verbs = (r"(?:give|giving|gave|contribute|contributing|donate|donating|put|putting|offer"
             r"|amount is|answer is|answer:)")
    m = re.search(rf"\b{verbs}\s*(?:in\s*)?(?:only\s*|just\s*|all\s*)?{_NUM}(?![\d])", clean, flags=re.IGNORECASE)
    if m:
        return _checked(_number(m.group(1)), endowment, "stated amount")
    m = re.fullmatch(rf"{_NUM}\s*(?:dollars?|usd)?\s*[.!]?", clean, flags=re.IGNORECASE)
    if m:
        return _checked(_number(m.group(1)), endowment, "whole answer")
    numbers = {_number(x) for x in re.findall(r"(?<![\d.,])\d+(?:[.,]\d+)?(?![\d])", clean)}
    if len(numbers) == 1:
        return _checked(numbers.pop(), endowment, "single number mentioned")
    return _fail("several amounts mentioned, none stated" if numbers else "no amount found")


def parse_choice_study(text: object, labels: Sequence[str] = ("C", "D")) -> ParseResult:
    """The study's rule on the raw text: the second label (D) iff it appears as a standalone word, else the first (C).
    A C with no standalone C in the text either (refusal, empty or unreadable reply) has status "default"; never
    raises (only non-strings and games without exactly two labels fail)."""
    if len(labels) != 2:
        return _fail(f"the study rule needs exactly two labels, got {len(labels)}")
    if not isinstance(text, str):
        return _fail(f"not text: {type(text).__name__}")
    coop, defect = labels
    if re.search(rf"\b{re.escape(defect)}\b", text):
        return ParseResult(1, "ok", f"standalone {defect}")
    if re.search(rf"\b{re.escape(coop)}\b", text):
        return ParseResult(0, "ok", f"standalone {coop}, no standalone {defect}")
    why = "empty answer" if not text.strip() else f"no standalone {coop} or {defect}"
    return ParseResult(0, "default", f"{why}: {coop} by the study's rule")


def parse_contribution_study(text: object, endowment: int) -> ParseResult:
    """The study's donation rule: the first run of digits in the raw text is the amount (0..endowment);
    no digits or an amount above the endowment fail; never raises."""
    if not isinstance(text, str):
        return _fail(f"not text: {type(text).__name__}")
    m = re.search(r"\d+", text)
    if not m:
        return _fail("no amount found")
    if len(m.group()) > 4300:  # Python's int() refuses longer digit strings
        return _fail(f"an amount of {len(m.group())} digits cannot be read")
    value = int(m.group())
    if value > endowment:
        return _fail(f"amount {value} is outside 0..{endowment}")
    return ParseResult(value, "ok", "first number")


def parse_answer(text: object, labels: Sequence[str], parser: str = "robust",
                 endowment: int | None = None) -> ParseResult:
    """Parse a choice among `labels`, or a contribution when `endowment` is given, with the named parser."""
    if parser not in PARSERS:
        raise ConfigError(f"unknown parser {parser!r}; allowed: {', '.join(PARSERS)}")
    if endowment is not None:
        return parse_contribution_study(text, endowment) if parser == "study" else parse_contribution(text, endowment)
    return parse_choice_study(text, labels) if parser == "study" else parse_choice(text, labels)
