"""Answer-distribution (KL) training step: shared-prefix forwarding and bf16 autocast vs the padded fp32 batch.

Data: the letter prompts of the demo's teacher data — the 20 in-sample scenarios (5 framings x 4 games, one shot)
plus 5 third-round prompts of the business prisoner's dilemma with different histories — rendered with the
embedded SmolLM2-135M-Instruct's chat template, targets = the reference strategist's P(C). One "step" = forward and
backward of the KL loss over a draw of 12 items (the demo's share per optimizer step), LoRA on the attention
projections as in configs/finetune_cpu.yaml. Baseline: left-padded batches of 4 in draw order, fp32 (tomarena before
the shared-prefix path). Compared: `kl_groups` + shared-prefix forwarding, fp32; and padded / shared-prefix under
bf16 autocast (what `mixed_precision: auto` picks on CPUs with AVX512-BF16/AMX; skipped elsewhere). Each timing: the
median of the steps of 3 different draws, after one warm-up step. Ratio: baseline seconds / best path seconds.
Guard: shared-prefix CE equals the padded CE within 1e-4 per item and the LoRA gradients agree to 1e-4 (relative
norm); bf16 CE within 5% of fp32.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import numpy as np

from bench.common import guard, parser, print_table, ratio_line, write_result

NAME = "distill_step_prefix_bf16"
TARGET = 1.3
GAMES = ("prisoners_dilemma", "snowdrift", "stag_hunt", "prisoners_delight")
PER_STEP = 12
BATCH = 4


def letter_records() -> list[dict[str, Any]]:
    """Letter-protocol prompts with the reference strategist's distributions: one-shot grid + repeated-game rounds."""
    from tomarena.agents.llm.prompts import build_messages
    from tomarena.agents.resolve import resolve_policy
    from tomarena.envs.framings import framings_by_sample
    from tomarena.envs.social_dilemma import SocialDilemmaEnv

    teacher = resolve_policy("strategist/reference")
    out = []

    def add(obs: dict) -> None:
        d, _ = teacher.act(obs, None, np.random.default_rng(0))
        out.append({"messages": build_messages(obs, "letter"), "probs": [float(d.probs[0]), float(d.probs[1])]})

    for framing in framings_by_sample("in"):
        for game in GAMES:
            env = SocialDilemmaEnv(game=game, framing=framing, rounds=1)
            _, infos = env.reset(seed=0)
            add(infos["player_0"]["observation"])
    for seed in range(5):
        env = SocialDilemmaEnv(game="prisoners_dilemma", framing="business", rounds=3)
        _, infos = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        for _ in range(2):
            _, _, _, _, infos = env.step({a: int(rng.integers(2)) for a in ("player_0", "player_1")})
        add(infos["player_0"]["observation"])
    return out


def kl_items(tokenizer: Any, records: list[dict[str, Any]]) -> list[Any]:
    """KlItems (prompt ids, C/D token ids, target probs) as tomarena's training data builds them."""
    from tomarena.training.data import KlItem, label_token_ids

    labels = label_token_ids(tokenizer, ("C", "D"))
    items = []
    for rec in records:
        text = tokenizer.apply_chat_template(rec["messages"], add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        items.append(KlItem(tuple(ids), tuple(labels), tuple(rec["probs"]), 1.0))
    return items


def step(model: Any, items: list[Any], pad_id: int, mode: str) -> tuple[float, np.ndarray, Any]:
    """One forward/backward of the summed KL cross-entropy: (seconds, per-item CE, LoRA gradient vector)."""
    import torch

    from tomarena.training.model import kl_chunks, kl_losses

    model.zero_grad(set_to_none=True)
    if mode.startswith("padded"):
        chunks = [(0, items[s:s + BATCH]) for s in range(0, len(items), BATCH)]
    else:
        chunks = kl_chunks(items, BATCH)
    ce_by_item: dict[int, float] = {}
    t0 = time.perf_counter()
    for plen, chunk in chunks:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.endswith("bf16")):
            ce, _ = kl_losses(model, chunk, pad_id, "cpu", plen=plen)
        ce.sum().backward()
        for it, c in zip(chunk, ce.detach().tolist()):
            ce_by_item[id(it)] = c
    seconds = time.perf_counter() - t0
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]).clone()
    return seconds, np.array([ce_by_item[id(it)] for it in items]), grads


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/distill.json."""
    import torch

    from tomarena.agents.llm.hf_load import quiet_transformers
    from tomarena.training.config import load_config
    from tomarena.training.model import cpu_has_native_bf16, kl_chunks, load_lora_model, load_tokenizer

    quiet_transformers()
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.quick:
        import tempfile
        from pathlib import Path

        from tests.tiny_model import build_tiny_model

        base_dir, model_name = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"), "tiny random Llama"
    else:
        from tomarena.agents.llm.embedded import embedded_model_dir

        base_dir, model_name = embedded_model_dir(), "SmolLM2-135M-Instruct"
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "finetune_cpu.yaml", {"progress": False})
    tok = load_tokenizer(base_dir)
    items = kl_items(tok, letter_records())
    model = load_lora_model(base_dir, cfg)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.01)  # a trained-looking adapter: gradients reach every LoRA matrix
    modes = ["padded fp32", "shared prefix fp32"] + (["padded bf16", "shared prefix bf16"] if cpu_has_native_bf16()
                                                      else [])
    draws = [[items[i] for i in np.random.default_rng(d).choice(len(items), PER_STEP)] for d in range(3)]
    step(model, draws[0], tok.pad_token_id, "padded fp32")  # warm-up, not counted
    times: dict[str, list[float]] = {m: [] for m in modes}
    for draw in draws:
        ref_t, ref_ce, ref_g = step(model, draw, tok.pad_token_id, "padded fp32")
        times["padded fp32"].append(ref_t)
        for mode in modes[1:]:
            t, ce, g = step(model, draw, tok.pad_token_id, mode)
            times[mode].append(t)
            if mode == "shared prefix fp32":
                guard(float(np.abs(ce - ref_ce).max()) <= 1e-4, f"shared-prefix CE equals padded CE "
                      f"(max diff {float(np.abs(ce - ref_ce).max()):.1e})")
                rel = float((g - ref_g).norm() / ref_g.norm())
                guard(rel <= 1e-4, f"shared-prefix LoRA gradients equal padded ones (relative diff {rel:.1e})")
            else:
                rel_ce = float(np.abs(ce - ref_ce).max() / np.abs(ref_ce).max())
                guard(rel_ce <= 0.05, f"bf16 CE within 5% of fp32 ({100 * rel_ce:.2f}%)")
    tokens = [sum(len(it.input_ids) for it in d) for d in draws]
    forwarded = [sum(plen + len(c) * max(len(it.input_ids) - plen for it in c) for plen, c in kl_chunks(d, BATCH))
                 for d in draws]
    table = [{"path": m, "median_step_s": statistics.median(times[m]),
              "speedup": statistics.median(times["padded fp32"]) / statistics.median(times[m])} for m in modes]
    print_table(table, f"KL step of {model_name}: {PER_STEP} of {len(items)} letter prompts per step, batches of "
                       f"{BATCH}, LoRA {list(cfg.targets)} (median of 3 draws)")
    print(f"prompt tokens per step {tokens}; forwarded with shared prefixes {forwarded}")
    ratio = max(row["speedup"] for row in table)
    result = {"quick": args.quick, "model": model_name, "items": len(items), "per_step": PER_STEP, "table": table,
              "tokens": tokens, "forwarded_tokens": forwarded, "ratio": ratio, "target": TARGET,
              "native_bf16": cpu_has_native_bf16()}
    write_result(NAME, json.loads(json.dumps(result)))
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET)
    return result


if __name__ == "__main__":
    main()
