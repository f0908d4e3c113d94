"""Seeded generation for the transformers backend: the keyword arguments given to transformers' generate() and one
prompt's sampled answer under its own seed. torch is imported inside (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

from typing import Any


def generation_params(max_new_tokens: int, temperature: float, top_p: float = 1.0, top_k: int = 0,
                      repetition_penalty: float = 1.0) -> dict[str, Any]:
    """The keyword arguments given to transformers' generate(): sampling ones only when sampling (greedy
    ignores them), the repetition penalty always (it applies to greedy decoding too)."""
    params: dict[str, Any] = {"do_sample": temperature > 0, "max_new_tokens": int(max_new_tokens),
                              "repetition_penalty": float(repetition_penalty)}
    if temperature > 0:
        params.update(temperature=float(temperature), top_p=float(top_p), top_k=int(top_k))
    return params


def generate_one(model: Any, tokenizer: Any, prompt_ids: list[int], params: dict[str, Any],
                 seed: int) -> tuple[str, int, int]:
    """(text, prompt tokens, completion tokens) of one prompt sampled under its own seed; the global torch RNG is
    left as it was, so the answer does not depend on what ran before."""
    import torch

    ids = torch.tensor([prompt_ids], device=model.device)
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(int(seed) % (2**63))
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pad_token_id=tokenizer.pad_token_id,
                             **params)
    new = out[0, ids.shape[1]:]
    text = tokenizer.decode(new, skip_special_tokens=True)
    return text, int(ids.shape[1]), int(new.shape[0])
