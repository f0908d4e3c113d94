"""Provenance of decisions (issue 22, item 9): per policy, the share of each trace source, and a note saying how much
of a study replay's play was modelled (replay-model) rather than the study's recorded counts (replay)."""

from __future__ import annotations

import pandas as pd
import pytest

from tomarena.analysis.provenance import replay_note, source_shares


def _frame() -> pd.DataFrame:
    sources = {"study/llama2-70b": ["replay"] * 60 + ["replay-model"] * 340,
               "study/llama2-7b": ["replay"] * 52,
               "classic/tit_for_tat": ["rule"] * 30,
               "hf:smol": ["llm"] * 7 + ["fallback"] * 1}
    rows = [(p, s) for p, ss in sources.items() for s in ss]
    frame = pd.DataFrame(rows, columns=["policy", "source"])
    return frame.astype({"policy": "category", "source": "category"})  # as trace shards read back


def test_source_shares_are_exact_per_policy() -> None:
    got = source_shares(_frame())
    assert list(got.columns) == ["policy", "decisions", "fallback", "llm", "replay", "replay_model", "rule"]
    assert got["policy"].tolist() == ["classic/tit_for_tat", "hf:smol", "study/llama2-70b", "study/llama2-7b"]
    assert got["decisions"].tolist() == [30, 8, 400, 52]
    rows = got.set_index("policy")
    assert rows.loc["study/llama2-70b", ["replay", "replay_model"]].tolist() == [0.15, 0.85]
    assert rows.loc["hf:smol", ["llm", "fallback"]].tolist() == [0.875, 0.125]
    assert rows.loc["classic/tit_for_tat"].drop("decisions").tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert rows.loc["study/llama2-7b", "replay"] == 1.0
    assert got.drop(columns=["policy", "decisions"]).sum(axis=1).tolist() == pytest.approx([1.0] * 4)


def test_replay_note_one_line_per_study_policy() -> None:
    assert replay_note(_frame()).splitlines() == [
        "study/llama2-70b: 85% of its 400 decisions modelled (replay-model), not recorded",
        "study/llama2-7b: 0% of its 52 decisions modelled (replay-model), not recorded",
    ]
    tiny = pd.DataFrame({"policy": ["study/x"] * 1000, "source": ["replay-model"] + ["replay"] * 999})
    assert replay_note(tiny) == "study/x: 0.1% of its 1000 decisions modelled (replay-model), not recorded"


def test_no_study_policy_and_empty_frames() -> None:
    frame = _frame()
    assert replay_note(frame[~frame["policy"].astype(str).str.startswith("study/")]) == ""
    empty = source_shares(frame.iloc[:0])
    assert list(empty.columns) == ["policy", "decisions", "replay", "replay_model"] and empty.empty
    assert replay_note(frame.iloc[:0]) == ""
