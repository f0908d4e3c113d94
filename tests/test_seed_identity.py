"""Seeds name what a policy is, never where its files lie (issue 25 item 3): a match's seed derives from each
player's seed identity (arena/identity.py), its label with every hashed file replaced by the file's content hash,
so a fine-tuned adapter copied to another folder gives the same seeds and standings, and another adapter does not."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.tiny_model import build_tiny_adapter
from tomarena.agents.resolve import resolve_policy
from tomarena.app.api import run_config
from tomarena.arena.config import validate_config
from tomarena.arena.episode import derive_seed
from tomarena.arena.identity import seed_identity
from tomarena.arena.store import RunStore
from tomarena.errors import ConfigError

TFT = "classic/tit_for_tat"


@pytest.fixture(scope="module")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A trained adapter, the same adapter copied to another folder, and a different adapter."""
    root = tmp_path_factory.mktemp("adapters")
    trained = build_tiny_adapter(tiny_model_dir, root / "trained" / "adapter", seed=1)
    copy = Path(shutil.copytree(trained, root / "elsewhere" / "deeper" / "copy"))
    other = build_tiny_adapter(tiny_model_dir, root / "other", seed=2)
    return trained, copy, other


def student(model: Path, adapter: Path | str) -> str:
    """The spec of the tiny model with `adapter`, sampling from its scored probabilities."""
    return f"hf:{model}?adapter={adapter}&temperature=1"


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def tournament(out: Path, label: str, resume: bool = False) -> Path:
    """The student against tit-for-tat: 3 rounds, 2 repetitions, run seed 11."""
    cfg = validate_config({"policies": [label, TFT], "rounds": 3, "repetitions": 2, "seed": 11})
    return run_config(cfg, out, resume=resume, progress=False)


def neutral(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Traces with the student's label (which keeps its path) written as STUDENT, in a label-free order."""
    out = frame.drop(columns=["run_id"]).copy()
    for col in ("episode_id", "match_key", "policy", "opponents"):
        out[col] = out[col].str.replace(label, "STUDENT", regex=False)
    return out.sort_values(["episode_id", "round", "agent"]).reset_index(drop=True)


def test_seed_identity_puts_content_hashes_where_the_label_has_paths(tiny_model_dir, adapters) -> None:
    trained, copy, other = adapters
    model, adapter = sha256(tiny_model_dir / "model.safetensors"), sha256(trained / "adapter_model.safetensors")
    expected = f"hf:{model}?adapter={adapter}&temperature=1"
    spellings = [trained, copy, os.path.relpath(copy)]  # a relative path names the same files
    assert [seed_identity(student(tiny_model_dir, a), resolve_policy(student(tiny_model_dir, a)))
            for a in spellings] == [expected] * 3
    different = student(tiny_model_dir, other)
    assert seed_identity(different, resolve_policy(different)) == \
        f"hf:{model}?adapter={sha256(other / 'adapter_model.safetensors')}&temperature=1"
    pol = resolve_policy(student(tiny_model_dir, trained))
    assert seed_identity("my student (lr 1e-4)", pol) == "my student (lr 1e-4)"  # a user's own label is the identity
    assert seed_identity("classic/random?p=0.3", resolve_policy("classic/random?p=0.3")) == "classic/random?p=0.3"


def test_a_copied_adapter_plays_as_the_original_and_another_adapter_does_not(tmp_path, tiny_model_dir,
                                                                             adapters) -> None:
    labels = [student(tiny_model_dir, a) for a in adapters]
    outs = [tournament(tmp_path / name, label) for name, label in zip(("trained", "copy", "other"), labels,
                                                                      strict=True)]
    frames = [neutral(RunStore(out).read_frame(), label) for out, label in zip(outs, labels, strict=True)]
    pd.testing.assert_frame_equal(frames[0], frames[1])  # same seeds, probabilities, actions and payoffs
    standings = [pd.read_csv(out / "standings.csv").replace(label, "STUDENT") for out, label in zip(outs, labels,
                                                                                                   strict=True)]
    pd.testing.assert_frame_equal(standings[0], standings[1])
    assert set(standings[0]["policy"]) == {"STUDENT", TFT}

    def seeds(frame: pd.DataFrame, with_student: bool) -> set[int]:
        has = frame["match_key"].str.contains("STUDENT")
        return set(frame.loc[has if with_student else ~has, "seed"])

    assert len(seeds(frames[0], True)) == 2 * 2  # (student, student) and (TFT, student), 2 repetitions each
    assert seeds(frames[0], True).isdisjoint(seeds(frames[2], True))  # another adapter: other seeds
    assert seeds(frames[0], False) == seeds(frames[2], False)  # TFT's self-play does not move
    manifests = [json.loads((out / "manifest.json").read_text()) for out in outs]
    keys = [m["seed_keys"] for m in manifests]
    assert keys[0][labels[0]] == keys[1][labels[1]] != keys[2][labels[2]] and keys[0][TFT] == TFT
    assert manifests[1]["models"][labels[1]]["adapter"] == str(adapters[1])  # the manifest still shows the path


def test_file_free_labels_seed_as_they_always_did(tmp_path) -> None:
    cfg = validate_config({"policies": ["classic/random?p=0.3", TFT], "rounds": 2, "seed": 4})
    frame = RunStore(run_config(cfg, tmp_path / "run", progress=False)).read_frame()
    expected = {key: derive_seed(4, key, 0) for key in frame["match_key"]}
    assert dict(zip(frame["match_key"], frame["seed"], strict=True)) == expected


def test_resuming_after_a_policy_file_changed_is_refused(tmp_path, tiny_model_dir, adapters) -> None:
    trained, _, other = adapters
    adapter = Path(shutil.copytree(trained, tmp_path / "adapter"))
    label = student(tiny_model_dir, adapter)
    out = tournament(tmp_path / "run", label)
    shutil.copyfile(other / "adapter_model.safetensors", adapter / "adapter_model.safetensors")  # retrained in place
    model = sha256(tiny_model_dir / "model.safetensors")
    was, now = (f"hf:{model}?adapter={sha256(a / 'adapter_model.safetensors')}&temperature=1" for a in (trained, other))
    message = (f"run directory {out} seeded {label!r} by {was!r}, this run by {now!r}; the policy's files changed "
               "since, or the run predates seeds by content hash, so its matches would mix two seedings; choose "
               "another --out")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        tournament(out, label, resume=True)


def test_seats_are_ordered_by_identity_so_a_policy_keeps_its_seat_wherever_its_files_lie() -> None:
    from tomarena.arena.config import build_specs, compositions

    ids = {"hf:/z/m": "hf:sha256:1", "hf:/a/m": "hf:sha256:2"}
    assert compositions(list(ids), 2, identities=ids) == [("hf:/z/m", "hf:/z/m"), ("hf:/z/m", "hf:/a/m"),
                                                          ("hf:/a/m", "hf:/a/m")]
    assert compositions(list(ids), 2) == [("hf:/a/m", "hf:/a/m"), ("hf:/a/m", "hf:/z/m"), ("hf:/z/m", "hf:/z/m")]
    cfg = validate_config({"policies": [TFT, "classic/always_defect"], "rounds": 2})
    specs = build_specs(cfg, {"prisoners_dilemma": 2}, {TFT: "x", "classic/always_defect": "y"})
    assert [(s.policies, s.seed_key) for s in specs] == [
        ((TFT, TFT), "x,x | prisoners_dilemma | none"),
        ((TFT, "classic/always_defect"), "x,y | prisoners_dilemma | none"),
        (("classic/always_defect", "classic/always_defect"), "y,y | prisoners_dilemma | none")]
    assert [s.match_key for s in build_specs(cfg, {"prisoners_dilemma": 2})] == [s.seed_key for s in build_specs(
        cfg, {"prisoners_dilemma": 2})]
