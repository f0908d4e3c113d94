"""`tomarena finetune`: LoRA fine-tuning of a student on exported traces. Its settings flags are generated from
FinetuneConfig's fields (tomarena.options), so a flag, a YAML key and its default and help are declared once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tomarena.options import add_flags, flag_values
from tomarena.training.config import FinetuneConfig, load_config
from tomarena.training.finetune import finetune


def _finetune(args: argparse.Namespace) -> int:
    config = load_config(args.config, flag_values(args, FinetuneConfig))
    manifest = finetune(args.traces, args.base, args.out, config, resume=args.resume, overwrite=args.overwrite)
    last = manifest["metrics"][-1] if manifest["metrics"] else {}
    print(json.dumps({"adapter": str(args.out), "steps": manifest["steps"], "loss": last.get("loss"),
                      "kl": last.get("kl"), "tokens_per_s": manifest["tokens_per_s"],
                      "wall_time_s": manifest["wall_time_s"]}))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `finetune` to the `tomarena` parser."""
    p = sub.add_parser("finetune", help="LoRA fine-tune a student on exported traces",
                       description="Train a LoRA adapter of --base on the assistant replies of --traces (TRL chat "
                       "JSONL or Parquet). Defaults are the study's recipe; --config YAML and flags override it.")
    p.add_argument("--traces", type=Path, required=True, help="exported traces (.jsonl or .parquet)")
    p.add_argument("--base", required=True, help="local HF model directory or llm/smollm2-135m-instruct")
    p.add_argument("--out", type=Path, required=True, help="adapter directory to create")
    p.add_argument("--config", type=Path, help="YAML file of fine-tuning keys (e.g. configs/finetune_cpu.yaml; "
                   "a pipeline config's `finetune:` section is read too)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.partial/")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    add_flags(p.add_argument_group("fine-tuning settings (also YAML keys of --config)"), FinetuneConfig)
    p.set_defaults(func=_finetune)
