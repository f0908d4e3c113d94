"""Local model scoring: one prompt per forward after its cached whole KV blocks (`batch_size=1`, batch-invariant, the
default) vs tails left-padded into shared forwards (`batch_size=16`).

Two workloads with the embedded SmolLM2-135M-Instruct, each side timed in the same process, alternated, best of 2:
(1) the arena end to end: the tournament of `llm_play_batched_vs_naive` (SmolLM2 vs itself and tit-for-tat in
repeated prisoner's dilemmas, three framings), where each round's decisions are one small call; (2) one large call:
every distinct prompt of that tournament scored at once on a cold cache, then again on the warm cache (as later
rounds and repetitions see it). Apart from the ratio, generation: 8 prompts x 40 greedy tokens, one at a time
(batch_size=1) vs one padded generate() (batch_size=8), the texts guarded equal.
Guards: batch_size=1 traces are the same bits with chunks of 1 match and of 64 (the invariance that lets the runner
cut chunks by time and Ray replicas merge requests); the two paths' probabilities agree within 1e-4 on the prompts
both saw (a sampled move can flip on a last-bit difference, after which the histories differ).
RATIO = padded seconds / one-per-forward seconds over both workloads (target >= 0.8: invariance costs little).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import guard, parser, print_table, ratio_line, timed, write_result
from bench.llm_play_batched_vs_naive import LLM, config

NAME = "hf_one_per_forward_vs_padded"
TARGET = 0.8
TOLERANCE = 1e-4
SIDES = {"one per forward (batch_size=1)": 1, "padded (batch_size=16)": 16}


def arena(batch_size: int, out: Path, quick: bool, chunk_size: int = 64) -> tuple[Any, float]:
    """The tournament with the model at `batch_size`, end to end: (trace frame, seconds)."""
    from tomarena.app.api import run_config
    from tomarena.arena.store import RunStore

    cfg = config(quick).model_copy(update={"chunk_size": chunk_size})
    cfg = cfg.model_copy(update={"policies": [f"{LLM}?batch_size={batch_size}", *cfg.policies[1:]]})
    _, secs = timed(lambda: run_config(cfg, out, progress=False))
    return RunStore(out).read_frame(), secs


def one_call(batch_size: int, prompts: list[list[dict[str, str]]]) -> tuple[np.ndarray, float, float, int]:
    """Score every prompt in one call, cold then warm: (scores, cold s, warm s, tokens forwarded when cold)."""
    from tomarena.agents.resolve import resolve_policy

    backend = resolve_policy(f"{LLM}?batch_size={batch_size}").backend
    backend.load()
    scores, cold = timed(lambda: backend.score(prompts, ["C", "D"]))
    tokens = backend.stats["forward_tokens"]
    _, warm = timed(lambda: backend.score(prompts, ["C", "D"]))
    return scores, cold, warm, tokens


def generation(batch_size: int) -> tuple[list[tuple[str, int, int]], float]:
    """8 greedy answers of up to 40 tokens at `batch_size`: (answers, seconds, best of 2)."""
    from tomarena.agents.resolve import resolve_policy

    backend = resolve_policy(f"{LLM}?batch_size={batch_size}").backend
    backend.load()
    prompts = [[{"role": "user", "content": f"Round {k}: you and your partner each choose C or D. Say why in a "
                                            "sentence, then answer C or D."}] for k in range(8)]
    runs = [timed(lambda: backend.generate(prompts, 40, 0.0, list(range(8)))) for _ in range(2)]
    return runs[0][0], min(secs for _, secs in runs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/hf_one_per_forward_vs_padded.json."""
    from tomarena.agents.resolve import resolve_policy

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    resolve_policy(LLM).backend.load()  # converts the GGUF if needed and warms the page cache; not timed
    best: dict[str, dict[str, float]] = {side: {} for side in SIDES}
    frames: dict[int, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(2):
            for side, bs in SIDES.items():
                frames[bs], secs = arena(bs, Path(tmp) / f"{bs}-{rep}", args.quick)
                best[side]["arena"] = min(best[side].get("arena", np.inf), secs)
        single, _ = arena(1, Path(tmp) / "chunks-of-1", args.quick, chunk_size=1)
    llm = {bs: f[f["policy"].str.startswith(LLM)].sort_values(["episode_id", "round", "agent"]) for bs, f in
           frames.items()}
    one = single[single["policy"].str.startswith(LLM)].sort_values(["episode_id", "round", "agent"])
    guard(np.array_equal(np.stack(one["probs"]), np.stack(llm[1]["probs"])),
          "batch_size=1: the same probabilities, bit for bit, with chunks of 1 match and of 64")
    same = llm[1].drop_duplicates("prompt").merge(llm[16].drop_duplicates("prompt"), on="prompt")
    err = float(np.abs(np.stack(same["probs_x"]) - np.stack(same["probs_y"])).max())
    guard(err <= TOLERANCE, f"the two paths' probabilities agree on the {len(same)} prompts both saw "
                            f"(max |diff| {err:.2e} <= {TOLERANCE})")
    prompts = [json.loads(p) for p in llm[1]["prompt"].drop_duplicates()]
    tokens: dict[str, int] = {}
    for _ in range(2):
        for side, bs in SIDES.items():
            _, cold, warm, tokens[side] = one_call(bs, prompts)
            best[side]["one call, cold"] = min(best[side].get("one call, cold", np.inf), cold)
            best[side]["one call, warm"] = min(best[side].get("one call, warm", np.inf), warm)
    table = [{"path": side, **{k: round(v, 2) for k, v in best[side].items()}, "tokens_forwarded_cold": tokens[side],
              "total_s": round(sum(best[side].values()), 2)} for side in SIDES]
    print_table(table, f"{len(llm[1])} SmolLM2 decisions in the arena; {len(prompts)} distinct prompts in one call "
                       "(seconds, best of 2)")
    (alone, t_alone), (together, t_together) = generation(1), generation(8)
    guard(alone == together, "generation: the 8 greedy answers are the same one at a time and batched")
    print(f"generation, 8 prompts x 40 tokens: one at a time {t_alone:.2f} s, batched {t_together:.2f} s "
          f"({t_alone / t_together:.2f}x)")
    one_s, padded_s = (sum(best[side].values()) for side in SIDES)
    ratio = padded_s / one_s
    result = {"quick": args.quick, "decisions": len(llm[1]), "distinct_prompts": len(prompts), "table": table,
              "max_abs_diff": err,
              "generation_s": {"one_at_a_time": t_alone, "batched_8": t_together}, "ratio": ratio, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET)
    return result


if __name__ == "__main__":
    main()
