"""LoRA fine-tuning: training tokens/s of tomarena's `finetune` vs TRL's SFTTrainer, same model, data and recipe.

Data: motivated answers of the reference strategist (the demo's teacher) to real repeated-game observations
(`build_messages`, motivation protocol, 5 in-sample framings x 4 games x 3 rounds x 2 seats, histories included),
written as chat JSONL; every example is distinct, so tomarena's de-duplication changes nothing. Both trainers get
the same LoRA settings (r, alpha, dropout, targets), AdamW, lr, cosine schedule without warm-up, clipping, batch
size, gradient accumulation, max steps, fp32, no gradient checkpointing, loss on the assistant reply only
(TRL: prompt/completion conversational records with completion_only_loss=True, since SmolLM2's chat template has
no {% generation %} markers for assistant_only_loss), and the SAME batches: TRL reads the examples sequentially
in the order tomarena draws for its first epoch. Tokens = non-padding tokens fed to the model (tomarena's
`train_tokens`; TRL: attention-mask sum per micro-batch). Seconds = the optimizer steps only, for both.
Guard: equal token totals, equal first-step losses (within 10%; same batch and same base model), both losses fall.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import guard, parser, print_table, ratio_line, timed, write_result

NAME = "finetune_vs_trl"
TARGET = 1.0
GAMES = ("prisoners_dilemma", "snowdrift", "stag_hunt", "prisoners_delight")
ROUNDS = 3
RECIPE = {"rank": 8, "alpha": 16, "dropout": 0.0, "targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "lr": 2e-3,
          "scheduler": "cosine", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0, "batch_size": 4,
          "grad_accum": 2, "epochs": 1, "distill": "none", "device": "cpu", "dtype": "float32", "seed": 0}


def examples() -> list[dict[str, Any]]:
    """Distinct trace records (chat messages ending with the reply, game, framing): the strategist playing itself."""
    from tomarena.agents.resolve import resolve_policy
    from tomarena.envs.framings import framings_by_sample
    from tomarena.envs.social_dilemma import SocialDilemmaEnv

    teacher = resolve_policy("strategist/reference")
    out, seen = [], set()
    for k, (framing, game) in enumerate((f, g) for f in framings_by_sample("in") for g in GAMES):
        env = SocialDilemmaEnv(game=game, framing=framing, rounds=ROUNDS)
        _, infos = env.reset(seed=k)
        rngs = [np.random.default_rng([k, seat]) for seat in (0, 1)]
        for _ in range(ROUNDS):
            acts = {}
            for seat in (0, 1):
                d, _ = teacher.act(infos[f"player_{seat}"]["observation"], None, rngs[seat])
                msgs = json.loads(d.prompt) + [{"role": "assistant", "content": d.completion}]
                if json.dumps(msgs) not in seen:
                    seen.add(json.dumps(msgs))
                    out.append({"messages": msgs, "game": game, "framing": framing})
                acts[f"player_{seat}"] = d.action
            _, _, _, _, infos = env.step(acts)
    return out


def write_traces(path: Path, data: list[dict[str, Any]]) -> Path:
    """The chat JSONL that tomarena's finetune reads (messages ending with the assistant reply)."""
    path.write_text("".join(json.dumps(rec) + "\n" for rec in data), encoding="utf-8")
    return path


def run_tomarena(traces: Path, base: str, out: Path, steps: int, max_length: int) -> dict[str, Any]:
    """tomarena's finetune: manifest plus per-step losses and the call's wall time."""
    from tomarena.training.config import make_config
    from tomarena.training.finetune import finetune

    cfg = make_config({**RECIPE, "max_steps": steps, "max_length": max_length, "save_every": 10 * steps + 1,
                       "progress": False})
    losses: list[float] = []
    manifest, wall = timed(lambda: finetune(traces, base, out, cfg, on_step=lambda s, i: losses.append(i["loss"])))
    return {**manifest, "losses": losses, "call_wall_s": wall}


def run_trl(data: list[dict[str, Any]], order: list[int], base_dir: Path, out: Path, steps: int,
            max_length: int) -> dict[str, Any]:
    """TRL's SFTTrainer on the same examples in tomarena's first-epoch order: tokens, step seconds, losses."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()

    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    ds = datasets.Dataset.from_list([{"prompt": data[i]["messages"][:-1], "completion": data[i]["messages"][-1:]}
                            for i in order])
    lora = LoraConfig(r=RECIPE["rank"], lora_alpha=RECIPE["alpha"], lora_dropout=RECIPE["dropout"],
                      target_modules=RECIPE["targets"], task_type="CAUSAL_LM")
    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=RECIPE["batch_size"],
                     gradient_accumulation_steps=RECIPE["grad_accum"], learning_rate=RECIPE["lr"],
                     lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
                     optim="adamw_torch", train_sampling_strategy="sequential", completion_only_loss=True,
                     max_length=max_length, activation_checkpointing=False, bf16=False, fp16=False, use_cpu=True,
                     logging_steps=1, save_strategy="no", report_to="none", seed=RECIPE["seed"],
                     dataloader_num_workers=0, disable_tqdm=True)
    tokens: list[int] = []
    step_s: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            step_s.append(time.perf_counter() - self.t0)

    class Counting(SFTTrainer):
        def compute_loss(self, model: Any, inputs: dict, *a: Any, **k: Any) -> Any:
            tokens.append(int(inputs["attention_mask"].sum()))
            return super().compute_loss(model, inputs, *a, **k)

    trainer = Counting(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora,
                       callbacks=[Timer()])
    trainer.remove_callback(PrinterCallback)
    assert not trainer.args.activation_checkpointing and not trainer.model.is_gradient_checkpointing
    _, wall = timed(trainer.train)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"train_tokens": sum(tokens), "train_seconds": sum(step_s), "tokens_per_s": sum(tokens) / sum(step_s),
            "losses": losses, "train_call_wall_s": wall, "steps": len(step_s)}


def falls(losses: list[float]) -> bool:
    """The mean loss of the last third of the steps is below the first step's."""
    tail = losses[-max(1, len(losses) // 3):]
    return len(losses) > 1 and float(np.mean(tail)) < losses[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/finetune.json."""
    from tomarena.agents.llm.embedded import EMBEDDED_ID, embedded_model_dir
    from tomarena.agents.llm.hf_load import quiet_transformers
    from tomarena.training.finetune import epoch_order

    quiet_transformers()
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    steps = 4 if args.quick else 8
    data = examples()
    guard(len(data) >= steps * RECIPE["batch_size"] * RECIPE["grad_accum"],
          f"{len(data)} distinct examples cover {steps} steps of {RECIPE['batch_size'] * RECIPE['grad_accum']}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.quick:
            from tests.tiny_model import build_tiny_model

            base_dir = build_tiny_model(tmp / "tiny")
            base, max_length, model_name = str(base_dir), 2048, "tiny random Llama (tests.tiny_model)"
        else:
            base_dir, base, max_length, model_name = embedded_model_dir(), EMBEDDED_ID, 1024, "SmolLM2-135M-Instruct"
        traces = write_traces(tmp / "traces.jsonl", data)
        run_tomarena(traces, base, tmp / "warmup", 1, max_length)  # warms torch/peft in this process; not counted
        ours = run_tomarena(traces, base, tmp / "tomarena", steps, max_length)
        theirs = run_trl(data, epoch_order(RECIPE["seed"], 0, len(data)), Path(base_dir), tmp / "trl", steps,
                         max_length)
    guard(ours["sft_items"] == ours["n_train"] == len(data) and ours["n_truncated"] == 0,
          "tomarena trains on every example as one item, none truncated")
    guard(ours["steps"] == theirs["steps"] == steps, f"both ran {steps} optimizer steps")
    guard(ours["train_tokens"] == theirs["train_tokens"],
          f"same tokens fed ({ours['train_tokens']} tomarena, {theirs['train_tokens']} TRL): same batches")
    first = abs(ours["losses"][0] - theirs["losses"][0]) / theirs["losses"][0]
    guard(first <= 0.10, f"first-step losses agree: tomarena {ours['losses'][0]:.4f}, TRL {theirs['losses'][0]:.4f} "
                         f"({100 * first:.2f}% apart)")
    guard(falls(ours["losses"]) and falls(theirs["losses"]), "both losses fall (last third of steps below step 1)")
    table = [{"trainer": "TRL SFTTrainer", "steps": theirs["steps"], "tokens": theirs["train_tokens"],
              "step_seconds": theirs["train_seconds"], "tokens_per_s": theirs["tokens_per_s"],
              "wall_s": theirs["train_call_wall_s"], "loss_first": theirs["losses"][0],
              "loss_last": theirs["losses"][-1]},
             {"trainer": "tomarena finetune", "steps": ours["steps"], "tokens": ours["train_tokens"],
              "step_seconds": ours["train_seconds"], "tokens_per_s": ours["tokens_per_s"],
              "wall_s": ours["call_wall_s"], "loss_first": ours["losses"][0], "loss_last": ours["losses"][-1]}]
    print_table(table, f"LoRA fine-tune of {model_name}: {len(data)} examples, {steps} steps of "
                       f"{RECIPE['batch_size']}x{RECIPE['grad_accum']} (wall_s: tomarena's whole finetune() call "
                       "incl. load and adapter save; TRL's train() call)")
    print_table([{"step": i + 1, "tomarena": a, "trl": b} for i, (a, b) in enumerate(zip(ours["losses"],
                                                                                         theirs["losses"]))],
                "loss per optimizer step (token mean over the step's reply tokens)")
    ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
    result = {"quick": args.quick, "model": model_name, "recipe": RECIPE, "steps": steps, "examples": len(data),
              "max_length": max_length, "table": table, "losses": {"tomarena": ours["losses"],
                                                                     "trl": theirs["losses"]},
              "first_loss_rel_diff": first, "trl_loss_mode": "prompt/completion + completion_only_loss",
              "ratio": ratio, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET)
    return result


if __name__ == "__main__":
    main()
