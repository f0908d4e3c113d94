"""The study's published per-scenario results, shipped as data: how often LLaMa-2-70b (the teacher), LLaMa-2-7b (the
base student) and its LoRA fine-tune chose C in each one-shot scenario, and their donations in the public-goods game.

Source: Lorè, Ilami & Heydari, "Large Model Strategic Thinking, Small Model Efficiency: Transferring Theory of Mind
in Large Language Models" (arXiv 2408.05241), figures transcribed from the authors' repository sepehrilami/LFB (MIT
licence) at commit 9bff884c9d68cdb740f5d2106d37b003946a60c8; see tomarena/data/study/README.md for the file-by-file
provenance. Only figures are shipped, no text of the study. The loaders use the csv module only (no pandas), so the
replay policies that read them stay light.
"""

from __future__ import annotations

import csv
from collections.abc import Container, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tomarena.errors import ConfigError

DATA_DIR = Path(__file__).parent / "data" / "study"
CITATION = ("Lorè, N., Ilami, S. & Heydari, B. (2024). Large Model Strategic Thinking, Small Model Efficiency: "
            "Transferring Theory of Mind in Large Language Models. arXiv:2408.05241.")
SOURCE = "github.com/sepehrilami/LFB @ 9bff884c9d68cdb740f5d2106d37b003946a60c8 (MIT)"
#: the sample size the study's notebooks divided every count by (one teacher cell has only 299 valid answers)
STUDY_SAMPLES = 300
SETS = ("in_sample", "oos_framings", "oos_games")
#: the study's donation game: a party fund of $0-10 (its other rules are not in the repository)
DONATION_ENDOWMENT = 10


@dataclass(frozen=True)
class StudyModel:
    """One model of the study: its id in the data, the model it was, and how it was asked."""

    id: str
    name: str
    protocol: str  # "motivation" (letter + written reasons) or "letter"
    role: str  # teacher, base, student, or extra
    summary: str


MODELS: dict[str, StudyModel] = {m.id: m for m in (
    StudyModel("llama2-70b", "LLaMa-2-70b-chat", "motivation", "teacher",
               "the study's teacher, asked for a letter and a motivation"),
    StudyModel("llama2-7b", "LLaMa-2-7b-chat", "letter", "base", "the study's base student, letter only"),
    StudyModel("llama2-7b-lora", "LLaMa-2-7b-chat + LoRA", "letter", "student",
               "the study's student after LoRA fine-tuning on the teacher's answers, letter only"),
    StudyModel("llama2-70b-letter", "LLaMa-2-70b-chat", "letter", "extra",
               "the teacher asked for the letter only (not in the study's headline results)"),
)}


@dataclass(frozen=True)
class Cell:
    """One one-shot scenario of one model: `n_cooperate` of `n_total` sampled answers chose C."""

    set: str
    model: str
    framing: str
    game: str
    n_cooperate: int
    n_total: int

    def p_cooperate(self, raw: bool = False) -> float:
        """The proportion of C answers; `raw` divides by the study's 300 as its notebooks did."""
        return self.n_cooperate / (STUDY_SAMPLES if raw else self.n_total)


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@cache
def one_shot_cells() -> tuple[Cell, ...]:
    """Every (set, model, framing, game) cell of the shipped one-shot counts, in file order."""
    return tuple(Cell(r["set"], r["model"], r["framing"], r["game"], int(r["n_cooperate"]), int(r["n_total"]))
                 for r in _rows("one_shot_counts.csv"))


@cache
def donation_counts() -> dict[str, dict[int, int]]:
    """{model: {dollars given: how many of the 300 answers}} for the study's donation game."""
    out: dict[str, dict[int, int]] = {}
    for r in _rows("donation_counts.csv"):
        out.setdefault(r["model"], {})[int(r["donation"])] = int(r["count"])
    return out


def check_model(model: str) -> StudyModel:
    """The StudyModel for `model`, or a ConfigError naming the allowed ids."""
    try:
        return MODELS[model]
    except KeyError as exc:
        raise ConfigError(f"unknown study model {model!r}; allowed: {', '.join(MODELS)}") from exc


@cache
def cell_index() -> dict[tuple[str, str, str], Cell]:
    """{(model, framing, game): Cell} for quick look-ups."""
    return {(c.model, c.framing, c.game): c for c in one_shot_cells()}


def cell(model: str, framing: str, game: str) -> Cell | None:
    """The recorded cell of one model and scenario, or None when the study did not run it."""
    return cell_index().get((model, framing, game))


def mean_donation(model: str) -> float:
    """The mean donation in dollars of one model's answers."""
    counts = donation_counts()[check_model(model).id]
    return sum(d * n for d, n in counts.items()) / sum(counts.values())


def propensity_rows(raw: bool = False, models: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Rows model, framing, game, set, n_cooperate, n_total, p_cooperate, method (the format of a propensity
    table); `raw` divides by 300 as the study's notebooks did, else by the valid answers (`n_total`)."""
    keep = set(models) if models is not None else set(MODELS)
    return [{"model": c.model, "framing": c.framing, "game": c.game, "set": c.set, "n_cooperate": c.n_cooperate,
             "n_total": c.n_total, "p_cooperate": c.p_cooperate(raw), "method": "counts"}
            for c in one_shot_cells() if c.model in keep]


def donation_rows(models: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Rows model, framing ('none'), game ('donation'), mean_contribution, n_valid for the donation game."""
    keep = set(models) if models is not None else set(MODELS)
    return [{"model": m, "framing": "none", "game": "donation", "mean_contribution": mean_donation(m),
             "n_valid": sum(c.values())} for m, c in donation_counts().items() if m in keep]


def donation_values(model: str) -> list[float]:
    """Every recorded answer of one model in the donation game (for t-tests)."""
    return [float(d) for d, n in sorted(donation_counts()[check_model(model).id].items()) for _ in range(n)]


def validate(games: Container[str] | None = None, framings: Container[str] | None = None) -> dict[str, int]:
    """Check the shipped files against themselves (models, sets, counts) and, when given, against the registered
    game and framing ids (this data module sits below envs, so the caller passes them: `validate(GAMES, FRAMINGS)`);
    returns {set: scenarios per model}. Raises ConfigError naming the first inconsistency."""
    per_set: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for c in one_shot_cells():
        where = f"study cell {c.model}/{c.framing}/{c.game}"
        check_model(c.model)
        if c.set not in SETS:
            raise ConfigError(f"{where}: unknown set {c.set!r}; allowed: {', '.join(SETS)}")
        if (framings is not None and c.framing not in framings) or (games is not None and c.game not in games):
            raise ConfigError(f"{where}: framing or game is not registered")
        if not 0 <= c.n_cooperate <= c.n_total <= STUDY_SAMPLES:
            raise ConfigError(f"{where}: counts {c.n_cooperate}/{c.n_total} outside 0..{STUDY_SAMPLES}")
        per_set.setdefault((c.set, c.model), set()).add((c.framing, c.game))
    for model, counts in donation_counts().items():
        check_model(model)
        if sum(counts.values()) != STUDY_SAMPLES or not all(0 <= d <= DONATION_ENDOWMENT for d in counts):
            raise ConfigError(f"study donations of {model}: need {STUDY_SAMPLES} answers in $0..{DONATION_ENDOWMENT}")
    sizes = {s: {len(v) for (s2, _), v in per_set.items() if s2 == s} for s in SETS}
    for s, n in sizes.items():
        if len(n) != 1:
            raise ConfigError(f"study set {s}: models cover different numbers of scenarios {sorted(n)}")
    return {s: n.pop() for s, n in sizes.items()}
