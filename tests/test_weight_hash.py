"""One model, one identity: inference and fine-tuning resolve and hash a model through the same loader
(agents/llm/hf_load.py), so a run manifest's model_sha256 and an adapter manifest's base_model.sha256 agree."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

import tomarena
from tomarena.agents.llm.hf_load import model_sha256, resolve_model_path, weight_files
from tomarena.errors import ConfigError
from tomarena.training.config import make_config
from tomarena.training.finetune import finetune
from tomarena.training.model import resolve_base

FAST = {"max_steps": 1, "batch_size": 2, "grad_accum": 1, "progress": False, "device": "cpu", "dtype": "float32",
        "max_length": 128}


def sha256(path: Path) -> str:
    """What `sha256sum` prints for one file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_traces(path: Path) -> Path:
    """Two tiny chat examples in the tiny tokenizer's vocabulary."""
    rows = [{"messages": [{"role": "user", "content": "Reply with exactly one letter, C or D."},
                          {"role": "assistant", "content": f"I choose {a}."}]} for a in ("C", "D")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_run_manifest_and_finetune_manifest_record_the_same_weight_hash(tiny_model_dir: Path,
                                                                        tmp_path: Path) -> None:
    spec = f"hf:{tiny_model_dir}"
    run = tomarena.sweep([spec], games="prisoners_dilemma", framings="none", out=tmp_path / "run")
    recorded = json.loads((run.path / "manifest.json").read_text())["models"][spec]["model_sha256"]
    adapter = finetune(write_traces(tmp_path / "t.jsonl"), spec, tmp_path / "adapter", make_config(FAST))
    on_disk = json.loads((tmp_path / "adapter" / "tomarena_finetune.json").read_text())
    assert recorded == on_disk["base_model"]["sha256"] == adapter["base_model"]["sha256"]
    assert recorded == sha256(tiny_model_dir / "model.safetensors")  # one file: what sha256sum prints
    plain = finetune(write_traces(tmp_path / "t2.jsonl"), str(tiny_model_dir), tmp_path / "b", make_config(FAST))
    assert plain["base_model"]["sha256"] == recorded  # a path and a policy spec name the same model


def test_gguf_and_sharded_models_resolve_and_hash_alike_for_both_sides(tmp_path: Path) -> None:
    gguf = tmp_path / "m" / "model.Q4_1.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF fake weights")
    assert resolve_model_path(str(gguf)) == (gguf.parent, gguf.name)
    assert resolve_base(f"hf:{gguf}?mode=score") == (gguf.parent.resolve(), gguf.name)
    assert model_sha256(gguf.parent, gguf.name) == sha256(gguf)

    sharded = tmp_path / "s"
    sharded.mkdir()
    (sharded / "config.json").write_text("{}")
    for i, part in ((2, b"second"), (1, b"first")):
        (sharded / f"model-0000{i}-of-00002.safetensors").write_bytes(part)
    (sharded / "pytorch_model.bin").write_bytes(b"never loaded, never hashed")
    assert [f.name for f in weight_files(sharded)] == ["model-00001-of-00002.safetensors",
                                                       "model-00002-of-00002.safetensors"]
    assert model_sha256(sharded) == hashlib.sha256(b"firstsecond").hexdigest()
    assert resolve_base(str(sharded)) == (sharded.resolve(), None)


def test_both_sides_refuse_a_missing_model_with_one_message(tmp_path: Path) -> None:
    missing = str(tmp_path / "nomodel")
    for resolve in (resolve_model_path, resolve_base):
        with pytest.raises(ConfigError, match=r"model path '.*nomodel' is not a local directory \(not found\)"):
            resolve(missing)
    with pytest.raises(ConfigError, match="holds no config.json"):
        resolve_base(str(tmp_path))
