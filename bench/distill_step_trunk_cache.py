"""Cached-trunk KL step: LoRA on the top 6 decoder layers, the 24 frozen layers below run once per prompt, vs today's
step (LoRA on every layer's attention projections, as configs/finetune_cpu.yaml).

Data: the letter prompts of bench/distill_step_prefix_bf16.py (the demo's 20 in-sample scenarios plus 5
repeated-game rounds, rendered
with the embedded SmolLM2-135M-Instruct's chat template, targets = the reference strategist's P(C)). One "step" =
forward and backward of the KL loss over a draw of 20 distinct prompts, in the preset's planning (`kl_chunks`: shared
prefixes forwarded once, batches of 4) and precision (`mixed_precision: auto`: bf16 autocast where the CPU computes
bf16 natively). Baseline: today's step. Compared: `lora_layers: 6` with the cached trunk (shared prefixes, and padded
batches). Each timing: the median of the steps of 3 different draws, after one warm-up step. Also timed: the one-off
trunk pass over all prompts (the preset's precision). Ratio: baseline seconds / cached-trunk seconds.
Guard (fp32, one draw): for the same lora_layers=6 adapter, the cached trunk gives the full forward's step loss (the
summed CE) and every item's CE to 1e-5 (relative: fp32 rounding alone moves a 30-layer CE of ~3 by ~1e-5 between
batch shapes, e.g. shared prefix vs padded), and the LoRA gradients to 1e-4 (relative norm).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import guard, parser, print_table, ratio_line, write_result
from bench.distill_step_prefix_bf16 import kl_items, letter_records

NAME = "distill_step_trunk_cache"
TARGET = 3.0
PER_STEP = 20
TOP = 6
ROOT = Path(__file__).resolve().parent.parent


def step(model: Any, items: list[Any], pad_id: int, *, bf16: bool, trunk: Any = None,
         shared: bool = True) -> tuple[float, np.ndarray, Any]:
    """One forward/backward of the summed KL CE: (seconds, per-item CE in `items` order, LoRA gradient vector)."""
    import torch

    from tomarena.training.model import kl_chunks, kl_losses

    model.zero_grad(set_to_none=True)
    chunks = kl_chunks(items, 4) if shared else [(0, items[s:s + 4]) for s in range(0, len(items), 4)]
    ce_by_item: dict[int, float] = {}
    t0 = time.perf_counter()
    for plen, chunk in chunks:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            ce, _ = kl_losses(model, chunk, pad_id, "cpu", plen=plen, trunk=trunk)
        ce.sum().backward()
        ce_by_item.update({id(it): c for it, c in zip(chunk, ce.detach().tolist())})
    seconds = time.perf_counter() - t0
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]).clone()
    return seconds, np.array([ce_by_item[id(it)] for it in items]), grads


def load(base_dir: Path, cfg: Any) -> Any:
    """A LoRA model whose B matrices are small and non-zero (a trained-looking adapter)."""
    import torch

    from tomarena.training.model import load_lora_model

    model = load_lora_model(base_dir, cfg)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.01)
    return model


def check_exact(model: Any, items: list[Any], pad_id: int, start: int) -> dict[str, float]:
    """The guard, in fp32: cached trunk vs full forward of the same adapter on one draw; returns both step times."""
    from tomarena.training.trunk import build_trunk

    trunk = build_trunk(model, [it.input_ids for it in items], start)
    full_t, full_ce, full_g = step(model, items, pad_id, bf16=False)
    fast_t, fast_ce, fast_g = step(model, items, pad_id, bf16=False, trunk=trunk)
    loss_rel = float(abs(fast_ce.sum() - full_ce.sum()) / abs(full_ce.sum()))
    guard(loss_rel <= 1e-5, f"cached-trunk step loss equals the full forward's (relative diff {loss_rel:.1e}, fp32)")
    diff = float(np.abs(fast_ce - full_ce).max())
    item_rel = float((np.abs(fast_ce - full_ce) / np.abs(full_ce)).max())
    guard(item_rel <= 1e-5, f"cached-trunk CE equals the full forward's per item (max relative diff {item_rel:.1e}, "
                            f"max abs diff {diff:.1e})")
    rel = float((fast_g - full_g).norm() / full_g.norm())
    guard(rel <= 1e-4, f"cached-trunk LoRA gradients equal the full forward's (relative diff {rel:.1e})")
    return {"full_forward_fp32_s": full_t, "cached_trunk_fp32_s": fast_t, "loss_rel_diff": loss_rel,
            "ce_max_abs_diff": diff, "ce_max_rel_diff": item_rel, "grad_rel_diff": rel}


def base_model(quick: bool) -> tuple[Path, str, int]:
    """(model directory, its name, LoRA layers of the fast path): the tiny random Llama with --quick."""
    if quick:
        import tempfile

        from tests.tiny_model import build_tiny_model

        return build_tiny_model(Path(tempfile.mkdtemp()) / "tiny"), "tiny random Llama", 1
    from tomarena.agents.llm.embedded import embedded_model_dir

    return embedded_model_dir(), "SmolLM2-135M-Instruct", TOP


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/trunk.json."""
    import torch

    from tomarena.agents.llm.hf_load import quiet_transformers
    from tomarena.training.config import load_config
    from tomarena.training.model import load_tokenizer, trunk_start, use_bf16_autocast
    from tomarena.training.trunk import build_trunk

    quiet_transformers()
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    base_dir, model_name, top = base_model(args.quick)
    today = load_config(ROOT / "configs" / "finetune_cpu.yaml", {"progress": False})
    fast_cfg = today.model_copy(update={"lora_layers": top})
    tok = load_tokenizer(base_dir)
    pad = tok.pad_token_id
    items = kl_items(tok, letter_records())
    draws = [[items[i] for i in np.random.default_rng(d).choice(len(items), PER_STEP, replace=False)]
             for d in range(3)]
    fast = load(base_dir, fast_cfg)
    start = trunk_start(fast, fast_cfg)
    exact = check_exact(fast, draws[0], pad, start)
    bf16 = use_bf16_autocast(today, torch.device("cpu"))
    trunk = build_trunk(fast, [it.input_ids for it in items], start, bf16)
    full = load(base_dir, today)
    paths = {"today: LoRA on all layers, shared prefix": lambda d: step(full, d, pad, bf16=bf16),
             f"cached trunk, LoRA on top {top}, shared prefix": lambda d: step(fast, d, pad, bf16=bf16, trunk=trunk),
             f"cached trunk, LoRA on top {top}, padded": lambda d: step(fast, d, pad, bf16=bf16, trunk=trunk,
                                                                          shared=False)}
    times: dict[str, list[float]] = {}
    for name, run in paths.items():
        run(draws[0])  # warm-up, not counted
        times[name] = [run(d)[0] for d in draws]
    base_s = statistics.median(next(iter(times.values())))
    table = [{"path": k, "median_step_s": statistics.median(v), "speedup": base_s / statistics.median(v)}
             for k, v in times.items()]
    print_table(table, f"KL step of {model_name}: {PER_STEP} of {len(items)} letter prompts, batches of 4, "
                       f"{'bf16 autocast' if bf16 else 'fp32'} (median of 3 draws)")
    tokens = [sum(len(it.input_ids) for it in d) for d in draws]
    print(f"one-off trunk pass over {len(items)} prompts ({trunk.summary()['tokens']} tokens, {start} layers): "
          f"{trunk.seconds:.2f} s; prompt tokens per step {tokens}")
    ratio = table[1]["speedup"]
    result = {"quick": args.quick, "model": model_name, "items": len(items), "per_step": PER_STEP, "top_layers": top,
              "bf16_autocast": bf16, "table": table, "trunk": trunk.summary(), "guard_fp32": exact,
              "tokens": tokens, "ratio": ratio, "target": TARGET}
    write_result(NAME, json.loads(json.dumps(result)))
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET)
    return result


if __name__ == "__main__":
    main()
