"""Which evaluated scenarios the student was trained on: read from the fine-tune's adapter manifest (its split and
the traces it names) and compared prompt by prompt with the student's sweep, so a training fit is never shown as
transfer. In-sample scenarios the fine-tune held out become the set `in_sample_holdout`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomarena.errors import ConfigError

MANIFEST = "tomarena_finetune.json"
HOLDOUT_SET = "in_sample_holdout"


@dataclass(frozen=True)
class TrainingRecord:
    """What a student was trained on: its (framing, game) scenarios and the exact prompts shown (canonical JSON)."""

    scenarios: frozenset[tuple[str, str]]
    prompts: frozenset[str]


def canonical(messages: Any) -> str:
    """One spelling of a chat prompt (a JSON string or a list of messages), for equality across files."""
    msgs = json.loads(messages) if isinstance(messages, str) else messages
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in msgs], sort_keys=True)


def read_training(adapter: str | os.PathLike[str]) -> TrainingRecord:
    """The training record of a fine-tuned adapter directory (its manifest's split and traces file)."""
    path = Path(adapter) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        traces = Path(manifest["traces"]["path"])
        scenarios = {tuple(s.split("|", 1)[::-1]) for s in manifest["split"]["train_scenarios"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--training {adapter}: no readable adapter manifest {MANIFEST} with a split and a traces "
                          "path (pass the directory `tomarena finetune --out` wrote)") from exc
    prompts = set()
    try:
        lines = traces.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"--training {adapter}: its traces file {traces} cannot be read") from exc
    for line in filter(str.strip, lines):
        ex = json.loads(line)
        if (ex.get("framing"), ex.get("game")) in scenarios:
            prompts.add(canonical([m for m in ex["messages"] if m["role"] != "assistant"]))
            if ex.get("letter_messages"):
                prompts.add(canonical(ex["letter_messages"]))
    return TrainingRecord(frozenset(scenarios), frozenset(prompts))  # type: ignore[arg-type]


def student_prompts(frame: Any, student: str) -> dict[tuple[str, str], set[str]]:
    """{(framing, game): the canonical prompts the student was evaluated on} from its one-shot sweep rows."""
    rows = frame[(frame["policy"] == student) & (frame["kind"] == "sweep") & frame["prompt"].notna()]
    out: dict[tuple[str, str], set[str]] = {}
    for (framing, game), grp in rows.groupby(["framing", "game"]):
        out[(str(framing), str(game))] = {canonical(p) for p in grp["prompt"].unique()}
    return out


def apply(table: Any, frame: Any, student: str, record: TrainingRecord | None) -> tuple[Any, list[str],
                                                                                     list[tuple[str, str]] | None]:
    """(the scenario table with held-out in-sample scenarios moved to `in_sample_holdout`, the sets whose every
    evaluated prompt was a training prompt, the trained scenarios for the nulls). Without a record the study's
    protocol is assumed: trained on the in_sample set, which is therefore a training fit."""
    if record is None:
        return table, ["in_sample"], None
    out = table.copy()
    untrained = [(f, g) not in record.scenarios for f, g in zip(out["framing"], out["game"], strict=True)]
    held = (out["set"] == "in_sample").to_numpy() & np.array(untrained, dtype=bool)
    out.loc[held, "set"] = HOLDOUT_SET
    seen = student_prompts(frame, student)
    return out, fitted_sets(out, seen, record.prompts), sorted(record.scenarios)


def fitted_sets(table: Any, seen: dict[tuple[str, str], set[str]], prompts: Iterable[str]) -> list[str]:
    """Sets in which every scenario's evaluated prompts were all shown in training."""
    known = set(prompts)
    fit = []
    for name, cells in table.groupby("set"):
        keys = list(zip(cells["framing"], cells["game"], strict=True))
        if keys and all(seen.get(k) and seen[k] <= known for k in keys):
            fit.append(str(name))
    return fit
