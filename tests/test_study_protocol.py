"""The study protocol end to end, on a scripted backend: a sweep with parser=study keeps every answer (refusals are
C by the study's rule and recorded as "default"), the run's summary counts them, the propensity counts them as
valid Cs, and the trace export keeps them for training; the robust parser on the same replies drops them instead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tomarena.agents.base import POLICIES, register_policy
from tomarena.agents.llm.llm_policy import LLMPolicy
from tomarena.analysis.propensity import propensity_table
from tomarena.arena.config import validate_config
from tomarena.arena.export import export_traces
from tomarena.arena.runner import run
from tomarena.arena.store import RunStore

REPLIES = ["I choose D.", "I choose C.", "I refuse to answer this.", "DC"]  # D, C, default C, default C (study)


class ScriptedBackend:
    """Answers with REPLIES in turn, whatever the prompt (so the totals of a run are known exactly)."""

    batch_invariant = False  # replies go out in call order

    def __init__(self) -> None:
        self.n = 0
        self.stats: dict = {}

    def generate(self, prompts, max_new_tokens, temperature, seeds, **sampling):
        out = []
        for _ in prompts:
            out.append((REPLIES[self.n % len(REPLIES)], 50, 5))
            self.n += 1
        return out

    def score_detailed(self, prompts, options, answer_prefix=""):
        raise AssertionError("a scripted reply never needs scoring in these tests")

    def describe(self) -> dict:
        return {"backend": "scripted"}

    def score(self, prompts, options, answer_prefix=""):
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def file_hashes(self) -> dict:
        return {}


def scripted(parser: str = "study", fallback: str = "C") -> LLMPolicy:
    """An LLM policy on the scripted backend with the study's decoding and the given parser."""
    return LLMPolicy(ScriptedBackend(), mode="generate", protocol="motivation", temperature=0.8, max_new_tokens=600,
                     fallback=fallback, top_p=0.9, top_k=50, repetition_penalty=1.1, parser=parser, decoding="study")


@pytest.fixture
def registered() -> Iterator[str]:
    """The scripted policy under a test-only registry id (removed afterwards)."""
    register_policy("test/scripted", scripted, "scripted replies (tests only)", kind="llm")
    yield "test/scripted"
    POLICIES._entries.pop("test/scripted", None)


def sweep(tmp_path: Path, spec: str) -> Path:
    """Two scenarios x 4 samples: every reply of REPLIES twice."""
    cfg = validate_config({"kind": "sweep", "policies": [spec], "games": ["prisoners_dilemma", "stag_hunt"],
                           "framings": ["business"], "samples": 4})
    return run(cfg, tmp_path / "run", progress=False)


def test_study_parser_keeps_and_counts_refusals(tmp_path, registered) -> None:
    out = sweep(tmp_path, registered)
    frame = RunStore(out).read_frame()
    assert frame["parse_status"].value_counts().to_dict() == {"ok": 4, "default": 4}
    assert sorted(frame.loc[frame["parse_status"] == "default", "completion"]) == sorted(REPLIES[2:] * 2)
    assert set(frame.loc[frame["parse_status"] == "default", "source"]) == {"fallback"}
    assert frame["action_label"].value_counts().to_dict() == {"C": 6, "D": 2}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["rows"], summary["parse_failures"], summary["fallbacks"]) == (8, 0, 4)
    manifest = json.loads((out / "manifest.json").read_text())["models"][registered]
    assert {k: manifest[k] for k in ("decoding", "top_p", "top_k", "repetition_penalty", "parser")} == {
        "decoding": "study", "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.1, "parser": "study"}
    props = propensity_table(frame)
    assert (int(props["n_valid"].sum()), int(props["n_invalid"].sum()), int(props["n_cooperate"].sum())) == (8, 0, 6)
    n = export_traces(out, registered, tmp_path / "teacher.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "teacher.jsonl").read_text().splitlines()]
    assert n == len(lines) == 8
    assert sorted(x["parse_status"] for x in lines) == ["default"] * 4 + ["ok"] * 4
    assert sorted(x["messages"][-1]["content"] for x in lines) == sorted(REPLIES * 2)


def test_robust_parser_drops_the_same_refusals(tmp_path, registered) -> None:
    out = sweep(tmp_path, f"{registered}?parser=robust")
    frame = RunStore(out).read_frame()
    assert frame["parse_status"].value_counts().to_dict() == {"ok": 4, "failed": 4}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["parse_failures"], summary["fallbacks"]) == (4, 4)
    assert int(propensity_table(frame)["n_invalid"].sum()) == 4
    assert export_traces(out, f"{registered}?parser=robust", tmp_path / "t.jsonl") == 4
    assert export_traces(out, f"{registered}?parser=robust", tmp_path / "all.jsonl", parse_ok_only=False) == 8
