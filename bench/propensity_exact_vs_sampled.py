"""Propensity table: tomarena's exact scoring vs the study's sampled-generation method, embedded SmolLM2.

20 in-sample scenarios (5 in-sample framings x prisoners_dilemma, snowdrift, stag_hunt, prisoners_delight), one
shot, letter protocol. tomarena: `LLMPolicy.act_batch` over the 20 observations (exact P(C) from one scoring
pass; no sampling error). Baseline (the study's method): sample answers with `model.generate` (temperature 1,
a few new tokens) and count C, 300 samples per scenario (standard error of p(C) up to 0.029). The baseline is
measured on a slice (a few scenarios x a few samples, both one sample per call and many samples per call) and
extrapolated linearly to 20 x 300; the ratio uses the faster (batched) baseline.
Guard: sampled C frequencies among parsed answers agree with the exact P(C) (binomial tests, loose).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import guard, parser, print_table, ratio_line, timed, write_result

NAME = "propensity_exact_vs_sampled"
TARGET = 100.0
GAMES = ("prisoners_dilemma", "snowdrift", "stag_hunt", "prisoners_delight")
BUDGET = 300
NEW_TOKENS = 4


def scenarios() -> list[Any]:
    """The 20 one-shot observations (in-sample framing x game), seat 0."""
    from tomarena.envs.framings import framings_by_sample
    from tomarena.envs.social_dilemma import SocialDilemmaEnv

    out = []
    for framing in framings_by_sample("in"):
        for game in GAMES:
            _, infos = SocialDilemmaEnv(game=game, framing=framing, rounds=1).reset(seed=0)
            out.append(infos["player_0"]["observation"])
    return out


def exact(observations: list[Any]) -> tuple[list[float], float, float, Any]:
    """tomarena: (P(C) per scenario, load seconds, scoring seconds, policy)."""
    from tomarena.agents.resolve import resolve_policy

    policy = resolve_policy("llm/smollm2-135m-instruct")
    _, t_load = timed(policy.backend.load)
    n = len(observations)
    rngs = [np.random.default_rng(i) for i in range(n)]
    results, t_score = timed(lambda: policy.act_batch(observations, [policy.initial_state()] * n, rngs))
    return [d.probs[0] for d, _ in results], t_load, t_score, policy


def load_plain() -> tuple[Any, Any]:
    """The same model with plain transformers (what a user of the study's method would load)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tomarena.agents.llm.embedded import embedded_model_dir

    path = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return tok, model


def sample(tok: Any, model: Any, messages: list[dict], n: int, per_call: int, seed: int) -> list[str]:
    """n sampled answers to one prompt, `per_call` return sequences per generate call."""
    import torch

    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    texts: list[str] = []
    torch.manual_seed(seed)
    with torch.inference_mode():
        while len(texts) < n:
            k = min(per_call, n - len(texts))
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                 max_new_tokens=NEW_TOKENS, num_return_sequences=k, pad_token_id=tok.eos_token_id)
            texts += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return texts


def check(p_exact: list[float], samples: list[list[str]]) -> dict[str, Any]:
    """Guard: per-scenario binomial tests (p > 1e-3) and a pooled z-test (|z| < 4) on parsed answers."""
    from scipy.stats import binomtest

    from tomarena.agents.llm.parsing import parse_choice

    rows, k_all, mean_all, var_all = [], 0, 0.0, 0.0
    for p, texts in zip(p_exact, samples):
        acts = [parse_choice(t).action for t in texts]
        parsed = [a for a in acts if a is not None]
        k = sum(1 for a in parsed if a == 0)
        pv = binomtest(k, len(parsed), p).pvalue if parsed else 1.0
        rows.append({"p_exact": p, "samples": len(texts), "parsed": len(parsed), "c_freq": k / max(len(parsed), 1),
                     "binom_p": pv})
        k_all, mean_all, var_all = k_all + k, mean_all + len(parsed) * p, var_all + len(parsed) * p * (1 - p)
    z = (k_all - mean_all) / max(var_all, 1e-12) ** 0.5
    guard(all(r["binom_p"] > 1e-3 for r in rows) and abs(z) < 4,
          f"sampled C frequencies consistent with exact P(C) (min binomial p={min(r['binom_p'] for r in rows):.3g}, "
          f"pooled z={z:.2f})")
    return {"per_scenario": rows, "pooled_z": z}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write bench/results/propensity.json."""
    from tomarena.agents.llm.prompts import build_messages

    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    n_scen, n_samp = (2, 8) if args.quick else (4, 24)
    obs = scenarios()
    p_c, t_load, t_exact, policy = exact(obs)
    _, t_exact2 = timed(lambda: policy.act_batch(obs, [None] * len(obs), [np.random.default_rng(0)] * len(obs)))
    tok, model = load_plain()
    slice_idx = list(np.linspace(0, len(obs) - 1, n_scen).round().astype(int))
    msgs = [build_messages(obs[i], "letter") for i in slice_idx]
    sample(tok, model, msgs[0], 2, 2, 0)  # warm-up
    one, t_one = timed(lambda: [sample(tok, model, m, n_samp // 2, 1, 1 + j) for j, m in enumerate(msgs)])
    many, t_many = timed(lambda: [sample(tok, model, m, n_samp, n_samp, 100 + j) for j, m in enumerate(msgs)])
    total = len(obs) * BUDGET
    per_one, per_many = t_one / (n_scen * (n_samp // 2)), t_many / (n_scen * n_samp)
    est_one, est_many = per_one * total, per_many * total
    guard_info = check([p_c[i] for i in slice_idx], [a + b for a, b in zip(one, many)])
    print_table([{"scenario": f"{obs[i].framing.id} x {obs[i].game.id}", **r}
                 for i, r in zip(slice_idx, guard_info["per_scenario"])], "guard: sampled vs exact P(C)")
    table = [
        {"method": "tomarena exact scoring (20 scenarios, cold prefix cache)", "seconds": t_exact,
         "measured": True, "ratio_vs_exact": 1.0},
        {"method": "tomarena exact scoring (repeat, warm prefix cache)", "seconds": t_exact2, "measured": True,
         "ratio_vs_exact": t_exact2 / t_exact},
        {"method": f"sampling, 1 sample/call: {per_one * 1e3:.1f} ms/sample x {total}", "seconds": est_one,
         "measured": False, "ratio_vs_exact": est_one / t_exact},
        {"method": f"sampling, {n_samp} samples/call: {per_many * 1e3:.1f} ms/sample x {total}", "seconds": est_many,
         "measured": False, "ratio_vs_exact": est_many / t_exact},
    ]
    print_table(table, "propensity table of 20 scenarios (model load excluded from both: "
                       f"{t_load:.2f} s for tomarena)")
    print(f"baseline extrapolated linearly from a measured slice of {n_scen} scenarios x {n_samp // 2} samples "
          f"(1/call, {t_one:.2f} s) and {n_scen} x {n_samp} samples ({n_samp}/call, {t_many:.2f} s) to 20 "
          f"scenarios x {BUDGET} samples; exact scoring has zero sampling error, {BUDGET} samples leave a standard "
          f"error of p(C) up to {0.5 / BUDGET ** 0.5:.3f}")
    ratio = min(est_one, est_many) / t_exact
    result = {"quick": args.quick, "p_cooperate": {f"{o.framing.id}|{o.game.id}": p for o, p in zip(obs, p_c)},
              "table": table, "slice": {"scenarios": n_scen, "samples_one_per_call": n_samp // 2,
                                        "samples_batched": n_samp, "seconds_one": t_one, "seconds_batched": t_many},
              "extrapolated": True, "budget": BUDGET, "new_tokens": NEW_TOKENS, "guard": guard_info,
              "backend_stats": dict(policy.backend.stats), "ratio": ratio, "target": TARGET}
    write_result(NAME, result)
    result["ratio_line"] = ratio_line(NAME, ratio, TARGET)
    return result


if __name__ == "__main__":
    main()
