"""Seeded generation for the transformers backend: the keyword arguments given to transformers' generate(), one
prompt's sampled answer under its own seed, and a left-padded batch of prompts sampled in one generate() whose rows
each draw from their own seeded generator. torch is imported inside (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

from collections.abc import Sequence
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


def seeded_draw(seeds: Sequence[int]) -> Any:
    """A logits processor to run last in a batched generate(): it draws each row's next token from the row's own
    generator (seeded by its seed) and leaves only that token possible, so generate()'s own draw takes it."""
    import torch
    from transformers import LogitsProcessor

    class SeededDraw(LogitsProcessor):
        def __init__(self) -> None:
            self.generators: list[Any] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            if not self.generators:
                self.generators = [torch.Generator(device=scores.device).manual_seed(int(s) % (2**63)) for s in seeds]
            probs = torch.softmax(scores.float(), dim=-1)
            picks = torch.stack([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
            return torch.full_like(scores, float("-inf")).scatter_(1, picks, 0.0)

    return SeededDraw()


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[list[int]], params: dict[str, Any],
                   seeds: Sequence[int]) -> list[tuple[str, int, int]]:
    """(text, prompt tokens, completion tokens) of each prompt, sampled together in one left-padded generate(); each
    row draws from its own seed (greedy needs none). A row's logits move in the last bits with its batch company."""
    import torch

    width, dev, pad = max(map(len, prompts)), model.device, tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=dev)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=dev)
    extra = {"logits_processor": [seeded_draw(seeds)]} if params["do_sample"] else {}
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, pad_token_id=pad, **params, **extra)
    stop = set(_eos_ids(model, tokenizer))
    answers = []
    for p, row in zip(prompts, out[:, width:].tolist(), strict=True):
        n = next((i + 1 for i, t in enumerate(row) if t in stop), len(row))  # through the first end token
        answers.append((tokenizer.decode(row[:n], skip_special_tokens=True), len(p), n))
    return answers


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The token ids that end an answer: the model's generation config's, else the tokenizer's."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    return [eos] if isinstance(eos, int) else list(eos or [])
