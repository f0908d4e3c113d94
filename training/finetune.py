"""LoRA fine-tuning of a student on exported traces: a short, plain torch loop (see the report in
training/__init__.py for why not TRL's SFTTrainer).

Identical (prompt, reply) examples are merged into one item weighted by their count. One optimizer step =
`grad_accum` micro-batches of `batch_size` SFT items (loss = weighted token mean over the step's reply tokens)
plus, with `distill: kl`, an equal share of `kl_repeat` passes over the de-duplicated answer-distribution items
(loss = count-weighted CE against teacher_probs). With `distill: kl_only` there is no text loss: an epoch is
`kl_repeat` passes over the answer-distribution items, `batch_size x grad_accum` of them per step. The data order of
every epoch is a pure function of (seed, epoch), so a resumed run replays exactly the steps an uninterrupted one
would. With `lora_layers` and `cache_trunk`, the frozen layers below the adapter run once per distinct sequence
before the first step (training/trunk.py) and every step forwards only the top layers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tomarena.errors import ConfigError
from tomarena.files import sha256_files, versions
from tomarena.training import checkpoint as ckpt
from tomarena.training.config import FinetuneConfig
from tomarena.training.data import (
    KlItem,
    SftItem,
    build_kl_items,
    dedup_sft,
    encode_sft,
    label_token_ids,
    read_traces,
    split_examples,
)
from tomarena.training.model import (
    base_sha256,
    check_lora_layers,
    kl_chunks,
    kl_losses,
    load_lora_model,
    load_tokenizer,
    resolve_base,
    sft_batch,
    sft_loss_sum,
    trunk_start,
    use_bf16_autocast,
)
from tomarena.training.state import LoopState, Sums
from tomarena.training.trunk import Trunk, build_trunk

VOLATILE_KEYS = ("progress", "save_every", "threads", "device")  # may change between a run and its resume


@dataclass
class Prepared:
    """Tokenized training data."""

    sft: list[SftItem]
    kl: list[KlItem]
    kl_skipped: int
    n_train: int

    @property
    def kl_norm(self) -> float:
        """Total weight of the KL items (they count as that many examples)."""
        return float(sum(it.weight for it in self.kl))


def steps_per_epoch(config: FinetuneConfig, n_sft: int, n_kl: int = 0) -> int:
    """Optimizer steps in one epoch: a pass over the SFT examples, or with kl_only `kl_repeat` passes over the KL
    items in steps of the effective batch."""
    if config.distill == "kl_only":
        return max(1, math.ceil(config.kl_repeat * n_kl / config.effective_batch))
    return math.ceil(math.ceil(n_sft / config.batch_size) / config.grad_accum)


def total_steps(config: FinetuneConfig, n_sft: int, n_kl: int = 0) -> int:
    """Steps of the whole run: epochs x steps per epoch, capped by max_steps."""
    total = config.epochs * steps_per_epoch(config, n_sft, n_kl)
    return min(total, config.max_steps) if config.max_steps else total


def epoch_order(seed: int, epoch: int, n: int, stream: int = 0) -> list[int]:
    """The shuffled example order of one epoch, fixed by (seed, epoch, stream)."""
    return [int(i) for i in np.random.default_rng([seed, epoch, stream]).permutation(n)]


def kl_epoch_order(config: FinetuneConfig, epoch: int, n_kl: int) -> list[int]:
    """The KL items of one epoch: `kl_repeat` shuffled passes, each fixed by (seed, epoch, pass)."""
    return [i for r in range(config.kl_repeat) for i in epoch_order(config.seed, epoch, n_kl, stream=1 + r)]


def plan_step(config: FinetuneConfig, n_sft: int, n_kl: int, step: int) -> tuple[int, list[list[int]], list[int]]:
    """(epoch, SFT micro-batches, KL items) of global optimizer step `step`."""
    spe = steps_per_epoch(config, n_sft, n_kl)
    epoch, k = divmod(step, spe)
    kl_order = kl_epoch_order(config, epoch, n_kl)
    if config.distill == "kl_only":
        eb = config.effective_batch
        return epoch, [], kl_order[k * eb:(k + 1) * eb]
    order = epoch_order(config.seed, epoch, n_sft)
    micro = [order[i:i + config.batch_size] for i in range(0, n_sft, config.batch_size)]
    kl_share = np.array_split(np.array(kl_order, dtype=int), spe)[k]
    return epoch, micro[k * config.grad_accum:(k + 1) * config.grad_accum], [int(i) for i in kl_share]


def prepare(tokenizer: Any, train: list, config: FinetuneConfig) -> Prepared:
    """Tokenize the training examples (the text unless kl_only, the letter prompts when distilling)."""
    only = config.distill == "kl_only"
    sft = [] if only else dedup_sft([encode_sft(tokenizer, ex.messages, config.max_length) for ex in train])
    kl, skipped = build_kl_items(tokenizer, train, config.max_length) if config.uses_kl else ([], 0)
    if only and not kl:
        raise ConfigError(f"distill: kl_only needs examples with teacher_probs and letter_messages; none of the "
                          f"{len(train)} training examples gives one ({skipped} could not be used)")
    return Prepared(sft, kl, skipped, len(train))


def make_trunk(model: Any, data: Prepared, config: FinetuneConfig, bf16: bool) -> Trunk | None:
    """The cached trunk of every training sequence (None when the run forwards the whole model)."""
    start = trunk_start(model, config)
    if not start:
        return None
    return build_trunk(model, [it.input_ids for it in [*data.sft, *data.kl]], start, bf16)


def train_step(model: Any, data: Prepared, micro: list[list[int]], kl_ids: list[int], config: FinetuneConfig,
               pad_id: int, kl_norm: float, bf16: bool = False, trunk: Trunk | None = None) -> Sums:
    """Forward/backward over one step's micro-batches (no optimizer update), under bf16 autocast when `bf16`, on
    the cached `trunk` when given; returns the step's sums (steps and seconds left at 0)."""
    import torch

    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    n_label = sum(data.sft[i].weight * data.sft[i].n_targets for mb in micro for i in mb)
    out = Sums()
    for mb in micro:
        items = [data.sft[i] for i in mb]
        with autocast:
            loss_sums, counts = sft_loss_sum(model, sft_batch(items, pad_id, device, trunk), trunk)
        w = torch.tensor([it.weight for it in items], dtype=loss_sums.dtype, device=loss_sums.device)
        ((w * loss_sums).sum() / max(n_label, 1)).backward()
        out.sft_sum += float((w * loss_sums.detach()).sum())
        out.sft_tokens += float((w * counts).sum())
        out.tokens += sum(len(it.input_ids) for it in items)
    for plen, items in kl_chunks([data.kl[i] for i in kl_ids], config.batch_size):
        with autocast:
            ce, kl = kl_losses(model, items, pad_id, device, plen=plen, trunk=trunk)
        w = torch.tensor([it.weight for it in items], dtype=ce.dtype, device=ce.device)
        (config.kl_weight * (w * ce).sum() / kl_norm).backward()
        out.kl_sum += float((w * kl).sum())
        out.kl_weight += float(w.sum())
        out.tokens += sum(len(it.input_ids) for it in items)
    return out


def make_optimizer(model: Any, config: FinetuneConfig, n_steps: int) -> tuple[Any, Any]:
    """AdamW over the LoRA parameters and the configured LR schedule."""
    import torch
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = int(round(config.warmup_ratio * n_steps))
    if config.scheduler == "constant":
        return opt, get_constant_schedule_with_warmup(opt, warmup)
    make = get_cosine_schedule_with_warmup if config.scheduler == "cosine" else get_linear_schedule_with_warmup
    return opt, make(opt, warmup, n_steps)


def run_loop(model: Any, data: Prepared, config: FinetuneConfig, out: Path, state: LoopState,
             opt: Any, sched: Any, pad_id: int, on_step: Callable[[int, dict], None] | None,
             trunk: Trunk | None = None) -> None:
    """Optimizer steps from state.step to the end, with a tqdm bar, checkpoints and the `on_step` hook."""
    import torch
    from tqdm.auto import tqdm

    n_steps = total_steps(config, len(data.sft), len(data.kl))
    spe = steps_per_epoch(config, len(data.sft), len(data.kl))
    kl_norm = max(data.kl_norm * config.kl_repeat / spe, 1e-12)
    model.train()
    bar = tqdm(total=n_steps, initial=state.step, desc="finetune", unit="step", disable=not config.progress)
    while state.step < n_steps:
        t0 = time.perf_counter()
        epoch, micro, kl_ids = plan_step(config, len(data.sft), len(data.kl), state.step)
        sums = train_step(model, data, micro, kl_ids, config, pad_id, kl_norm, state.bf16_autocast, trunk)
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        sums.steps, sums.seconds = 1, time.perf_counter() - t0
        state.record(epoch, sums)
        state.step += 1
        info = {"loss": sums.loss, "kl": sums.kl}
        bar.set_postfix({k: f"{v:.4f}" for k, v in info.items() if v is not None})
        bar.update(1)
        if state.step % config.save_every == 0 and state.step < n_steps:
            ckpt.save_checkpoint(out, model, opt, sched, state)
        if on_step:
            on_step(state.step, info)
    bar.close()
    state.close_epoch()


def _manifest(base: str, base_dir: Path, gguf_file: str | None, traces: Path, n_examples: int, split: dict,
              data: Prepared, config: FinetuneConfig, state: LoopState, tokenizer: Any, wall: float,
              trunk: Trunk | None) -> dict[str, Any]:
    fp = state.fingerprint
    labels = label_token_ids(tokenizer, ("C", "D"))
    return {
        "format": "tomarena-finetune/1",
        "base_model": {"spec": base, "path": str(base_dir), "gguf_file": gguf_file, "sha256": fp["base_sha256"]},
        "traces": {"path": str(Path(traces).resolve()), "sha256": fp["traces_sha256"]},
        "config": config.model_dump(mode="json"),
        "split": split,
        "n_examples": n_examples,
        "n_train": data.n_train, "sft_items": len(data.sft),
        "n_truncated": int(sum(it.weight for it in data.sft if it.truncated)),
        "kl_items": len(data.kl), "kl_examples": int(data.kl_norm), "kl_skipped": data.kl_skipped,
        "answer_tokens": {"C": labels[0], "D": labels[1]} if labels else None,
        "steps": state.step,
        "metrics": state.metrics,
        "train_seconds": round(state.train_seconds, 3),
        "wall_time_s": round(wall, 3),
        "train_tokens": state.tokens,
        "tokens_per_s": round(state.tokens / state.train_seconds, 2) if state.train_seconds else None,
        "resumed_from_step": state.resumed_from_step,
        "bf16_autocast": state.bf16_autocast,
        "trunk": trunk.summary() if trunk else None,
        "versions": versions(),
    }


def finetune(traces: Path, base: str, out: Path, config: FinetuneConfig | None = None, *, resume: bool = False,
             overwrite: bool = False, on_step: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Fine-tune a LoRA adapter of `base` on `traces` into `out` (adapter + tomarena_finetune.json, written
    atomically); returns the manifest. `resume` continues from `out`.partial/; `on_step(step, info)` is a hook."""
    import torch

    started = time.perf_counter()
    config = config or FinetuneConfig()
    traces, out = Path(traces), Path(out)
    examples = read_traces(traces)  # cheap checks first: a bad trace file should not wait for a model load
    train, split = split_examples(examples, config.holdout_framings, config.holdout_games)
    base_dir, gguf_file = resolve_base(base)
    check_lora_layers(base_dir, config, gguf_file)
    tokenizer = load_tokenizer(base_dir, gguf_file)
    ckpt.prepare_out(out, resume, overwrite)
    if config.threads:
        torch.set_num_threads(config.threads)
    data = prepare(tokenizer, train, config)
    model = load_lora_model(base_dir, config, gguf_file)
    opt, sched = make_optimizer(model, config, total_steps(config, len(data.sft), len(data.kl)))
    fingerprint = {"config": config.model_dump(mode="json", exclude=set(VOLATILE_KEYS)),
                   "traces_sha256": sha256_files([traces]), "base_sha256": base_sha256(base_dir, gguf_file)}
    loaded = ckpt.load_checkpoint(out, model, opt, sched, fingerprint) if resume else None
    state = replace(loaded, resumed_from_step=loaded.step) if loaded else LoopState(fingerprint)
    state.bf16_autocast = use_bf16_autocast(config, next(model.parameters()).device)
    trunk = make_trunk(model, data, config, state.bf16_autocast)
    run_loop(model, data, config, out, state, opt, sched, tokenizer.pad_token_id, on_step, trunk)
    manifest = _manifest(base, base_dir, gguf_file, traces, len(examples), split, data, config, state, tokenizer,
                         time.perf_counter() - started, trunk)
    ckpt.write_final(out, model, manifest)
    return manifest
