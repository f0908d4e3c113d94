"""`tomarena finetune`: LoRA fine-tuning of a student on exported traces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FLAG_KEYS = ("epochs", "max_steps", "lr", "rank", "alpha", "targets", "batch_size", "grad_accum", "seed",
             "max_length", "distill", "kl_weight", "kl_repeat", "holdout_framings", "holdout_games", "save_every",
             "mixed_precision", "lora_layers")


def _finetune(args: argparse.Namespace) -> int:
    from tomarena.training.config import load_config
    from tomarena.training.finetune import finetune

    overrides = {k: getattr(args, k) for k in FLAG_KEYS}
    if args.no_progress:
        overrides["progress"] = False
    if args.no_cache_trunk:
        overrides["cache_trunk"] = False
    config = load_config(args.config, overrides)
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
    p.add_argument("--config", type=Path, help="YAML file of fine-tuning keys (e.g. configs/finetune_cpu.yaml)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--lr", type=float)
    p.add_argument("--rank", type=int, help="LoRA rank r")
    p.add_argument("--alpha", type=float, help="LoRA alpha")
    p.add_argument("--targets", help="comma-separated module names, or all-linear")
    p.add_argument("--lora-layers", type=int, help="LoRA only on the top N decoder layers (default: all)")
    p.add_argument("--no-cache-trunk", action="store_true",
                   help="with --lora-layers: forward the whole model every step instead of caching the frozen layers")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--max-length", type=int)
    p.add_argument("--distill", choices=["none", "kl", "kl_only"],
                   help="kl: fit the answer token to teacher_probs too; kl_only: fit only that (no text loss)")
    p.add_argument("--kl-weight", type=float)
    p.add_argument("--kl-repeat", type=int, help="passes over the distribution items per epoch of text")
    p.add_argument("--holdout-framings", help="comma-separated framing ids kept out of training")
    p.add_argument("--holdout-games", help="comma-separated game ids kept out of training")
    p.add_argument("--save-every", type=int, help="optimizer steps between checkpoints")
    p.add_argument("--mixed-precision", choices=["no", "bf16", "auto"],
                   help="bf16 autocast for forward/backward (auto: only where bf16 is native)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.partial/")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_finetune)
