"""LLM tournament: tomarena's arena (batched, de-duplicated, prefix-cached scoring) vs one plain forward per decision.

The embedded SmolLM2-135M-Instruct plays prisoners_dilemma against itself and against classic/tit_for_tat in a few
framings (letter protocol, exact scoring, temperature 1), through `arena.runner.run` with the local executor: each
round, the pending decisions of the model are one `act_batch`; the HF backend scores identical prompts once and
reuses the KV cache of shared prefixes. Baseline: the same model loaded with plain transformers, one
`model(input_ids)` forward per decision on the SAME prompts (read back from the run's traces, rendered with the chat
template exactly as `HFBackend.render` does), no batching, no cache. Both sides include loading the model.
Guard: the baseline's P(C)/P(D) of the answer token equal the probs recorded in the traces within 1e-4.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import guard, machine_info, parser, print_table, ratio_line, timed, write_result

NAME = "llm_play_batched_vs_naive"
TARGET = 5.0
LLM = "llm/smollm2-135m-instruct"
TOLERANCE = 1e-4


def config(quick: bool) -> Any:
    """The tournament: SmolLM2 vs itself and vs tit-for-tat (and tit-for-tat vs itself) in prisoners_dilemma."""
    from tomarena.arena.config import validate_config

    framings = ["business", "team"] if quick else ["business", "friendsharing", "team"]
    return validate_config({"policies": [LLM, "classic/tit_for_tat"], "games": ["prisoners_dilemma"],
                            "framings": framings, "rounds": 4 if quick else 5, "repetitions": 1 if quick else 2,
                            "seed": 0, "executor": "local"})


def run_arena(cfg: Any, out: Path) -> tuple[Any, dict[str, Any], float]:
    """tomarena end to end (resolve, model load, play, Parquet, summaries): (trace frame, backend stats, seconds)."""
    from tomarena.arena.runner import run
    from tomarena.arena.store import RunStore

    _, secs = timed(lambda: run(cfg, out, progress=False))
    stats = json.loads((out / "summary.json").read_text())["backend_stats"].get(LLM, {})
    return RunStore(out).read_frame(), stats, secs


def load_plain() -> tuple[Any, Any]:
    """Tokenizer and fp32 model of the embedded SmolLM2, loaded with plain transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tomarena.agents.llm.embedded import embedded_model_dir

    path = embedded_model_dir()
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def label_tokens(tok: Any, labels: tuple[str, ...] = ("C", "D")) -> list[list[int]]:
    """Per label, the single-token surface forms ('C' and ' C') the backend scores as that answer."""
    out = []
    for lab in labels:
        ids = {tuple(tok(v, add_special_tokens=False).input_ids) for v in (lab, " " + lab)}
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"label {lab!r} is not a single token in every surface form: {ids}")
        out.append(sorted(i[0] for i in ids))
    return out


def naive(tok: Any, model: Any, prompts: list[str]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """One plain forward per decision: (normalised [P(C), P(D)] per prompt, prompt token ids)."""
    import torch

    forms = label_tokens(tok)
    probs, rendered = [], []
    with torch.inference_mode():
        for prompt in prompts:
            text = tok.apply_chat_template(json.loads(prompt), tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False).input_ids
            logits = model(torch.tensor([ids])).logits[0, -1]
            p = torch.softmax(logits.double(), dim=-1)
            mass = np.array([float(p[f].sum()) for f in forms])
            probs.append(mass / mass.sum())
            rendered.append(tuple(ids))
    return np.array(probs), rendered


def trie_tokens(sequences: list[tuple[int, ...]]) -> int:
    """Tokens a perfect prefix cache would forward: the nodes of the token trie of the distinct sequences."""
    total, prev = 0, ()
    for s in sorted(set(sequences)):
        lcp = next((i for i, (a, b) in enumerate(zip(prev, s)) if a != b), min(len(prev), len(s)))
        total, prev = total + len(s) - lcp, s
    return total


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """This process's fp32 matmul throughput in FLOP/s (best of `reps` n x n x n products)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b)[1] for _ in range(reps))
    return 2 * n ** 3 / best


def matmul_params(model: Any) -> int:
    """Parameters that take part in per-token matmuls: all but the token embedding (tied to the LM head here)."""
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p.data_ptr() != emb.data_ptr())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/llm_play.json."""
    from tomarena.agents.resolve import resolve_policy

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    cfg = config(args.quick)
    resolve_policy(LLM).backend.load()  # converts the GGUF if needed and warms the page cache; not timed
    with tempfile.TemporaryDirectory() as tmp:
        frame, stats, t_arena = run_arena(cfg, Path(tmp) / "run")
    rows = frame[frame["policy"] == LLM]
    guard(len(rows) > 0 and bool((rows["source"] == "llm").all()), f"{len(rows)} SmolLM2 decisions, all scored")
    (tok, model), t_load = timed(load_plain)
    (probs, rendered), t_loop = timed(lambda: naive(tok, model, rows["prompt"].tolist()))
    lengths = [len(r) for r in rendered]
    recorded = np.array(rows["probs"].tolist())
    err = float(np.abs(probs - recorded).max())
    guard(err <= TOLERANCE, f"plain forward P(C)/P(D) equal the traces' probs (max |diff| {err:.2e} <= {TOLERANCE})")
    guard(lengths == rows["prompt_tokens"].astype(int).tolist(), "same prompt token counts as the backend rendered")
    n = len(rows)
    t_naive = t_load + t_loop
    uniq = rows.drop_duplicates("prompt")
    uniq_tokens, all_tokens, ideal = int(uniq["prompt_tokens"].sum()), int(sum(lengths)), trie_tokens(rendered)
    peak, params = matmul_peak(), matmul_params(model)
    flops = lambda tokens: 2 * params * tokens
    table = [
        {"path": "naive: load + one forward per decision", "seconds": t_naive, "decisions_per_s": n / t_naive,
         "tokens_through_model": all_tokens, "ratio": 1.0},
        {"path": "naive loop only (model loaded)", "seconds": t_loop, "decisions_per_s": n / t_loop,
         "tokens_through_model": all_tokens, "ratio": t_naive / t_loop},
        {"path": "tomarena arena.runner.run (end to end)", "seconds": t_arena, "decisions_per_s": n / t_arena,
         "tokens_through_model": stats.get("forward_tokens"), "ratio": t_naive / t_arena},
    ]
    print_table(table, f"{n} SmolLM2 decisions: {cfg.rounds} rounds x {len(cfg.framings)} framings x "
                       f"{cfg.repetitions} reps, vs itself and tit_for_tat ({machine_info()['cpu_model']})")
    util = [{"work": "unique prompt tokens (de-duplicated)", "tokens": uniq_tokens,
             "GFLOP": flops(uniq_tokens) / 1e9, "GFLOP_per_s": flops(uniq_tokens) / t_arena / 1e9,
             "fraction_of_peak": flops(uniq_tokens) / t_arena / peak},
            {"work": "tokens tomarena actually forwarded", "tokens": stats.get("forward_tokens", 0),
             "GFLOP": flops(stats.get("forward_tokens", 0)) / 1e9,
             "GFLOP_per_s": flops(stats.get("forward_tokens", 0)) / t_arena / 1e9,
             "fraction_of_peak": flops(stats.get("forward_tokens", 0)) / t_arena / peak},
            {"work": "perfect prefix reuse (token-trie nodes)", "tokens": ideal, "GFLOP": flops(ideal) / 1e9,
             "GFLOP_per_s": flops(ideal) / t_arena / 1e9, "fraction_of_peak": flops(ideal) / t_arena / peak},
            {"work": "naive loop, every decision's tokens", "tokens": all_tokens, "GFLOP": flops(all_tokens) / 1e9,
             "GFLOP_per_s": flops(all_tokens) / t_loop / 1e9, "fraction_of_peak": flops(all_tokens) / t_loop / peak}]
    print_table(util, f"model FLOPs (2 x {params / 1e6:.1f}M matmul parameters x tokens; attention and LM head "
                      f"left out) vs the measured fp32 matmul peak of {peak / 1e9:.1f} GFLOP/s")
    print(f"backend stats: {stats}; {len(uniq)} unique prompts of {n} decisions")
    print("both sides include loading the model from the same safetensors (tomarena inside run(), naive "
          f"{t_load:.2f} s); ratio = naive seconds / tomarena seconds")
    ratio = t_naive / t_arena
    result = {"quick": args.quick, "config": cfg.model_dump(mode="json"), "decisions": n,
              "unique_prompts": len(uniq), "prompt_tokens_all": all_tokens,
              "prompt_tokens_unique": uniq_tokens, "prompt_tokens_trie": ideal, "table": table, "flops": util,
              "matmul_peak_flops": peak,
              "matmul_params": params, "backend_stats": stats, "guard_max_abs_diff": err, "ratio": ratio,
              "ratio_without_naive_load": t_loop / t_arena, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET)
    return result


if __name__ == "__main__":
    main()
