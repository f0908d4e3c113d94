"""Exported traces are chat data in both formats: the JSONL and its Parquet twin load as the same conversations
(`messages` and `letter_messages` as lists of {role, content}), the training reader takes both, and TRL's
SFTTrainer trains on either unchanged (one step on a tiny model built in code)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tomarena.arena.config import validate_config
from tomarena.arena.export import export_traces
from tomarena.arena.runner import run
from tomarena.training.data import read_traces

TEACHER = "strategist/reference"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tournament's teacher answers exported as t.jsonl + t.parquet."""
    tmp = tmp_path_factory.mktemp("export")
    cfg = validate_config({"policies": [TEACHER, "classic/tit_for_tat"], "rounds": 2,
                           "games": ["prisoners_dilemma"], "framings": ["business"]})
    out = run(cfg, tmp / "run", progress=False)
    assert export_traces(out, TEACHER, tmp / "t.jsonl") == 6  # 2 rounds vs tit_for_tat + 2 x 2 of self-play
    return tmp / "t.jsonl"


def test_parquet_twin_holds_the_same_records_with_chat_messages_as_structs(exported: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(exported.with_suffix(".parquet"))
    chat = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert table.schema.field("messages").type == chat
    assert table.schema.field("letter_messages").type == chat
    assert table.schema.field("teacher_probs").type == pa.list_(pa.float64())
    jsonl = [json.loads(line) for line in exported.read_text().splitlines()]
    assert table.to_pylist() == jsonl
    assert [e.messages for e in read_traces(exported.with_suffix(".parquet"))] == \
        [e.messages for e in read_traces(exported)]


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_both_formats_train_in_trl_sft_trainer_unchanged(exported: Path, tiny_model_dir: Path, tmp_path: Path,
                                                         fmt: str) -> None:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    path = exported.with_suffix(".jsonl" if fmt == "json" else ".parquet")
    ds = datasets.load_dataset(fmt, data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds[0]["messages"][-1]["role"] == "assistant" and isinstance(ds[0]["messages"][0]["content"], str)
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2,
                     report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args, train_dataset=ds,
                         processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
