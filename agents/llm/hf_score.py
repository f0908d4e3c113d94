"""Exact option scoring for the transformers backend: which token rows to forward for every (prompt, option
sequence), one batched forward after a shared prefix, and the per-option probabilities from the sequence ones.
torch is imported inside the function that runs the model (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tomarena.agents.llm.prefix import Row

#: forwards a batch of rows and returns the log-softmax of each row's last `need` positions
Forward = Callable[[list[Row], list[int]], list[np.ndarray]]
#: cuts sorted rows into batches given each row's needed positions
Planner = Callable[[list[Row], list[int]], list[list[Row]]]


def option_sequences(tokenizer: Any, options: Sequence[str]) -> list[tuple[int, Row]]:
    """Distinct (option index, token ids) for every surface form ("C" and " C") of every option."""
    seen: dict[Row, int] = {}
    for i, opt in enumerate(options):
        for v in (opt, " " + opt):
            ids = tuple(tokenizer(v, add_special_tokens=False).input_ids)
            if ids and ids not in seen:
                seen[ids] = i
    return [(i, s) for s, i in seen.items()]


def needed_rows(prompts: Sequence[Row], seqs: Sequence[Row]) -> dict[Row, int]:
    """The rows to forward (prompt + option sequence but its last token) -> how many final positions they need."""
    rows: dict[Row, int] = {}
    for p in prompts:
        for s in seqs:
            key = p + s[:-1]
            rows[key] = max(rows.get(key, 0), len(s))
    return rows


def sequence_logprobs(prompts: Sequence[Row], seqs: Sequence[Row], plan: Planner, forward: Forward) -> np.ndarray:
    """log P(prompt is followed by seq) for every unique prompt x option sequence: [n_prompts, n_seqs]."""
    rows = needed_rows(prompts, seqs)
    order = sorted(rows)
    logps: dict[Row, np.ndarray] = {}
    for chunk in plan(order, [rows[k] for k in order]):
        for key, lp in zip(chunk, forward(chunk, [rows[k] for k in chunk]), strict=True):
            logps[key] = lp
    out = np.empty((len(prompts), len(seqs)))
    for i, p in enumerate(prompts):
        for j, s in enumerate(seqs):
            lp = logps[p + s[:-1]]
            out[i, j] = sum(float(lp[lp.shape[0] - len(s) + t, tok]) for t, tok in enumerate(s))
    return out


def forward_rows(model: Any, pad_id: int, rows: list[Row], needs: list[int], n_pre: int,
                 prefix_kv: Any = None) -> tuple[list[np.ndarray], int]:
    """Log-softmax of the last `need` positions of each row in one batched forward: the suffixes after the first
    `n_pre` tokens, left-padded with explicit positions, continuing `prefix_kv` (the KV of those tokens at batch
    size 1, consumed here) when `n_pre` > 0. Also returns the number of suffix tokens forwarded."""
    import torch

    keep = max(needs)
    suffixes = [r[n_pre:] for r in rows]
    width, dev = max(len(s) for s in suffixes), model.device
    ids = torch.tensor([[pad_id] * (width - len(s)) + list(s) for s in suffixes], device=dev)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes], device=dev)
    pos = torch.tensor([[n_pre] * (width - len(s)) + list(range(n_pre, n_pre + len(s))) for s in suffixes],
                       device=dev)
    kwargs: dict[str, Any] = {}
    if n_pre:
        if len(rows) > 1:
            prefix_kv.batch_repeat_interleave(len(rows))
        kwargs["cache"] = prefix_kv
        mask = torch.cat([torch.ones(len(rows), n_pre, dtype=mask.dtype, device=dev), mask], dim=1)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep,
                       use_cache=bool(n_pre), **kwargs).logits
    lp = torch.log_softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
    return [lp[i, keep - k:] for i, k in enumerate(needs)], int(mask[:, n_pre:].sum())


def exclusive_logprobs(seq_lp: np.ndarray, seqs: list[tuple[int, Row]], n_options: int) -> np.ndarray:
    """Per option: log of P(answer starts with one of its sequences and does not continue into a longer one)."""
    start = np.exp(seq_lp)
    probs = np.zeros(n_options)
    for j, (opt, s) in enumerate(seqs):
        longer = [k for k, (_, t) in enumerate(seqs) if len(t) > len(s) and t[:len(s)] == s]
        minimal = [k for k in longer if not any(len(seqs[m][1]) < len(seqs[k][1])
                                                and seqs[k][1][:len(seqs[m][1])] == seqs[m][1] for m in longer)]
        probs[opt] += max(start[j] - sum(start[k] for k in minimal), 0.0)
    with np.errstate(divide="ignore"):
        return np.log(probs) if probs.size else probs


def other_mass(logp: np.ndarray) -> np.ndarray:
    """Probability that fell on none of the options, per row of a `score` result."""
    return np.clip(1.0 - np.exp(logp).sum(axis=-1), 0.0, 1.0)
