"""Slow tests on the embedded SmolLM2-135M: a short CPU fine-tune with `distill: kl` on hand-written,
strategist-like traces moves the exact next-token P(C) toward the teacher's (low in the Prisoner's
Dilemma, high in Prisoner's Delight); and with LoRA on the top 6 layers the cached trunk gives the full
forward's losses and gradients; the adapter manifest records the base model's hash as a run manifest does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GAMES = {  # game id -> (R, S, T, P) and the teacher's P(C)
    "prisoners_dilemma": ((5, 2, 10, 3), 0.1),
    "prisoners_delight": ((10, 3, 5, 2), 0.9),
}
ROLES = {
    "business": "You run a firm and meet the head of a rival firm.",
    "team": "You and a colleague you barely know each pick a project.",
    "ir": "You represent your nation in talks with another nation's delegate.",
    "friendsharing": "You and a close friend each pick a code of conduct.",
}
REASONS = {
    "C": "I choose C. We both do best when we both pick C, and I expect my co-player to see that too.",
    "D": "I choose D. Whatever my co-player picks, D leaves me with more points, so it is the safer choice.",
}


def scenario_prompt(game: str, role: str, instruction: str) -> list[dict[str, str]]:
    """A short two-message prompt stating the payoffs in prose."""
    (r, s, t, p), _ = GAMES[game]
    user = (f"You and the co-player each choose C or D at the same time. If both choose C, each earns {r} points. "
            f"If you choose C and the co-player chooses D, you earn {s} and they earn {t}. If you choose D and they "
            f"choose C, you earn {t} and they earn {s}. If both choose D, each earns {p}. {instruction}")
    return [{"role": "system", "content": f"Take part in this scenario. {role}"}, {"role": "user", "content": user}]


def letter_prompt(game: str, framing: str) -> list[dict[str, str]]:
    """The letter-only protocol prompt of a scenario."""
    return scenario_prompt(game, ROLES[framing], "Reply with exactly one letter, C or D, and nothing else.")


def write_traces(path: Path, reps: int = 5) -> Path:
    """40 examples: 2 games x 4 framings x `reps` motivation replies sampled at the teacher's rate."""
    rows = []
    for game, (_, p_c) in GAMES.items():
        for framing, role in ROLES.items():
            motivation = scenario_prompt(game, role, "Start with 'I choose C.' or 'I choose D.', then say why.")
            for i in range(reps):
                action = "C" if i < round(p_c * reps) else "D"
                rows.append({"messages": motivation + [{"role": "assistant", "content": REASONS[action]}],
                             "letter_messages": letter_prompt(game, framing), "teacher_probs": [p_c, 1 - p_c],
                             "action_labels": ["C", "D"], "game": game, "framing": framing, "round": 0,
                             "policy": "strategist", "protocol": "motivation", "run_id": "slow", "episode_id": f"{i}"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def p_cooperate(model, tok) -> dict[tuple[str, str], float]:
    """Exact P(C) / (P(C) + P(D)) at the answer position of every letter prompt."""
    import torch

    c_id, d_id = (tok(x, add_special_tokens=False)["input_ids"][0] for x in ("C", "D"))
    out = {}
    for game in GAMES:
        for framing in ROLES:
            enc = tok.apply_chat_template(letter_prompt(game, framing), add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
            with torch.no_grad():
                probs = model(**enc).logits[0, -1].softmax(-1)
            out[(game, framing)] = float(probs[c_id] / (probs[c_id] + probs[d_id]))
    return out


@pytest.mark.slow
def test_cpu_finetune_moves_p_cooperate_toward_teacher(tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tomarena.agents.llm.embedded import EMBEDDED_ID, embedded_model_dir
    from tomarena.agents.resolve import resolve_policy
    from tomarena.training.config import load_config
    from tomarena.training.finetune import finetune

    base_dir = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    before = p_cooperate(base, tok)
    config = load_config(Path(__file__).parents[1] / "configs" / "finetune_cpu.yaml", {"progress": False})
    manifest = finetune(write_traces(tmp_path / "traces.jsonl"), EMBEDDED_ID, tmp_path / "adapter", config)
    after = p_cooperate(PeftModel.from_pretrained(base, tmp_path / "adapter").eval(), tok)
    print(json.dumps({"before": {"|".join(k): round(v, 3) for k, v in before.items()},
                      "after": {"|".join(k): round(v, 3) for k, v in after.items()},
                      "tokens_per_s": manifest["tokens_per_s"], "train_seconds": manifest["train_seconds"]}))
    assert manifest["kl_items"] == 8 and manifest["kl_examples"] == 40
    # the adapter names its base as a run manifest names the embedded policy's model
    assert manifest["base_model"]["sha256"] == resolve_policy(EMBEDDED_ID).describe()["model_sha256"]
    # the study's improvement 100*(p_ft - p_base)/(p_teacher - p_base) on every scenario with a real gap
    gaps = {k: GAMES[k[0]][1] - before[k] for k in before if abs(GAMES[k[0]][1] - before[k]) > 0.2}
    assert len(gaps) == 4  # the base model says C ~93% of the time; the teacher's 10% in the PD is far off
    improvement = {k: 100 * (after[k] - before[k]) / gap for k, gap in gaps.items()}
    assert all(v > 30 for v in improvement.values()), improvement


@pytest.mark.slow
def test_cached_trunk_equals_the_full_forward_on_smollm2() -> None:
    import numpy as np
    import torch

    from tomarena.agents.llm.embedded import embedded_model_dir
    from tomarena.training.config import make_config
    from tomarena.training.data import KlItem, encode_sft, label_token_ids
    from tomarena.training.model import (
        kl_groups,
        kl_losses,
        load_lora_model,
        load_tokenizer,
        sft_batch,
        sft_loss_sum,
        trunk_start,
    )
    from tomarena.training.trunk import build_trunk

    base_dir = embedded_model_dir()
    tok = load_tokenizer(base_dir)
    cfg = make_config({"lora_layers": 6, "targets": "q_proj,k_proj,v_proj,o_proj", "device": "cpu",
                       "dtype": "float32"})
    model = load_lora_model(base_dir, cfg)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.01)
    labels = label_token_ids(tok, ("C", "D"))
    prompts = [letter_prompt(g, f) for g in GAMES for f in ("business", "team")]
    kl = [KlItem(tuple(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True, return_dict=True)
                       ["input_ids"]), labels, (0.3, 0.7), 1.0) for m in prompts]
    sft = [encode_sft(tok, (*m, {"role": "assistant", "content": REASONS["D"]}), 320) for m in prompts[:2]]
    trunk = build_trunk(model, [it.input_ids for it in [*kl, *sft]], trunk_start(model, cfg))
    assert trunk.start == 24 and len(trunk.states) == 6
    (plen, members), = [g for g in kl_groups(kl) if g[0] > 0][:1]
    cases = {"kl shared prefix": lambda tr: kl_losses(model, [kl[i] for i in members], tok.pad_token_id, "cpu",
                                                      plen=plen, trunk=tr)[0],
             "kl padded": lambda tr: kl_losses(model, kl, tok.pad_token_id, "cpu", trunk=tr)[0],
             "sft": lambda tr: sft_loss_sum(model, sft_batch(sft, tok.pad_token_id, "cpu", tr), tr)[0]}
    for name, fn in cases.items():
        out = []
        for tr in (None, trunk):
            model.zero_grad()
            loss = fn(tr)
            loss.sum().backward()
            out.append((loss.detach().numpy(), torch.cat([p.grad.flatten() for p in model.parameters()
                                                          if p.requires_grad])))
        (full, g_full), (fast, g_fast) = out
        np.testing.assert_allclose(fast, full, rtol=1e-5, err_msg=name)  # fp32 rounding of 30 layers: ~3e-6
        assert float((g_fast - g_full).norm() / g_full.norm()) < 1e-4, name
