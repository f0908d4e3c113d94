"""Model side of fine-tuning: find the base model and load it with a fresh LoRA adapter (through agents/llm/hf_load.py,
the loader inference uses, so both resolve, hash and place a model alike), build padded batches, and compute the two
losses (masked next-token CE on replies; CE of the answer token against teacher_probs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tomarena.agents.llm.hf_load import (
    load_causal_lm,
    load_model_config,
    model_sha256,
    resolve_model_path,
    torch_device,
    torch_dtype,
)
from tomarena.agents.llm.hf_load import load_tokenizer as load_tokenizer  # the one tokenizer loader, re-exported
from tomarena.agents.llm.prefix import group_by_prefix
from tomarena.errors import BackendError, ConfigError
from tomarena.training.config import FinetuneConfig
from tomarena.training.data import IGNORE_INDEX, KlItem, SftItem
from tomarena.training.trunk import Trunk, check_cacheable, decoder_of, n_layers, top_layers


def resolve_base(base: str) -> tuple[Path, str | None]:
    """(directory, GGUF file name or None) of the base model, resolved as inference resolves it: a local path, a
    .gguf file, the embedded model's id, or a policy spec's model part (hf:PATH?options)."""
    path, gguf_file = resolve_model_path(base.split("?", 1)[0].removeprefix("hf:"))
    return path.resolve(), gguf_file


def base_sha256(base_dir: Path, gguf_file: str | None = None) -> str:
    """The base model's weight hash, the same value a run manifest records (agents/llm/hf_load.py model_sha256)."""
    digest = model_sha256(base_dir, gguf_file)
    if digest is None:
        raise BackendError(f"base model directory {base_dir} holds no safetensors weights")
    return digest


def pick_device(config: FinetuneConfig) -> tuple[Any, Any]:
    """(torch.device, torch dtype) from the config's `device` and `dtype`, chosen as inference chooses them ('auto'
    picks CUDA, and bf16 there when the GPU has it)."""
    import torch

    device = torch_device(config.device)
    return torch.device(device), torch_dtype(config.dtype, device)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX), so autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16_autocast(config: FinetuneConfig, device: Any) -> bool:
    """Resolve `mixed_precision` for this device: 'bf16' always, 'auto' only with native bf16 support."""
    import torch

    if config.mixed_precision != "auto":
        return config.mixed_precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def lora_targets(base: Any, config: FinetuneConfig) -> Any:
    """PEFT target_modules: the configured names, or 'all-linear' (with lora_layers: every linear module name inside
    the decoder layers, since PEFT takes no layer restriction with a string target)."""
    import torch

    if config.targets != ("all-linear",):
        return list(config.targets)
    if config.lora_layers is None:
        return "all-linear"
    layers = decoder_of(base).layers
    return sorted({n.rsplit(".", 1)[-1] for n, m in layers.named_modules() if isinstance(m, torch.nn.Linear)})


def lora_layer_ids(model_config: Any, config: FinetuneConfig) -> list[int] | None:
    """Indices of the decoder layers that get LoRA (None: all); ConfigError if lora_layers exceeds the model's or
    the trunk cannot be cached for it."""
    if config.lora_layers is None:
        return None
    total = model_config.get_text_config().num_hidden_layers
    if config.lora_layers > total:
        raise ConfigError(f"lora_layers={config.lora_layers} is out of range for this model: allowed 1..{total} "
                          f"(it has {total} decoder layers)")
    if config.cache_trunk and config.lora_layers < total:
        check_cacheable(model_config, config.lora_layers)
    return list(range(total - config.lora_layers, total))


def check_lora_layers(base_dir: Path, config: FinetuneConfig, gguf_file: str | None = None) -> None:
    """Check lora_layers against the base model's config (cheap: before any output or weight loading)."""
    if config.lora_layers is not None:
        lora_layer_ids(load_model_config(base_dir, gguf_file), config)


def check_lora_placement(model: Any, config: FinetuneConfig) -> None:
    """With lora_layers: ConfigError when a target got no LoRA (it lies outside the top layers, e.g. embed_tokens) or
    LoRA landed in the decoder below them (an exact module path); modules above the decoder (lm_head) may have it."""
    placed = [n for n, m in model.named_modules() if hasattr(m, "lora_A")]
    missing = [t for t in config.targets if t != "all-linear" and not any(n.endswith("." + t) for n in placed)]
    if missing:
        raise ConfigError(f"LoRA targets {missing} lie outside the top {config.lora_layers} decoder layers; with "
                          f"lora_layers only modules inside those layers (or above the decoder) get LoRA")
    dec = decoder_of(model)
    top = {id(m) for layer in list(dec.layers)[len(dec.layers) - config.lora_layers:] for m in layer.modules()}
    below = [n for n, m in dec.named_modules() if hasattr(m, "lora_A") and id(m) not in top]
    if below:
        raise ConfigError(f"LoRA target {below[0]!r} lies below the top {config.lora_layers} decoder layers "
                          f"(lora_layers={config.lora_layers}); name modules by their last part, e.g. q_proj")


def load_lora_model(base_dir: Path, config: FinetuneConfig, gguf_file: str | None = None) -> Any:
    """The base model (frozen) wrapped by PEFT with a new LoRA adapter on `config.targets` (inside the top
    `config.lora_layers` decoder layers when set), loaded by the inference loader and moved to the config's device."""
    import torch
    from peft import LoraConfig, get_peft_model

    device, dtype = pick_device(config)
    base = load_causal_lm(base_dir, gguf_file, dtype)
    layer_ids = lora_layer_ids(base.config, config)
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=lora_targets(base, config), task_type="CAUSAL_LM",
                      layers_to_transform=layer_ids, layers_pattern="layers" if layer_ids else None)
    torch.manual_seed(config.seed)
    try:
        model = get_peft_model(base, lora)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"LoRA targets {list(config.targets)} do not fit this model ({str(exc).splitlines()[0]}); "
                          f"its linear modules: {', '.join(names)}") from exc
    if layer_ids:
        check_lora_placement(model, config)
    return model.to(device)


def trunk_start(model: Any, config: FinetuneConfig) -> int:
    """How many bottom layers the run caches: those below the first LoRA layer with lora_layers and cache_trunk,
    else 0 (no trunk)."""
    if config.lora_layers is None or not config.cache_trunk:
        return 0
    return n_layers(model) - config.lora_layers


def padded_states(rows: Sequence[Any], width: int, *, left: bool) -> Any:
    """Cached trunk states [tokens, hidden] stacked into [rows, width, hidden], zero-padded right or left (padding
    positions are masked out, so their value never reaches a real position)."""
    import torch

    first = rows[0]
    out = torch.zeros((len(rows), width, first.shape[-1]), dtype=first.dtype, device=first.device)
    for row, states in enumerate(rows):
        n = states.shape[0]
        if left:
            out[row, width - n:] = states
        else:
            out[row, :n] = states
    return out


def sft_batch(items: Sequence[SftItem], pad_id: int, device: Any, trunk: Trunk | None = None) -> dict[str, Any]:
    """Right-padded input_ids (or, with a trunk, its cached states as inputs_embeds) / attention_mask / labels."""
    import torch

    width = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.input_ids)
        ids[row, :n] = torch.tensor(it.input_ids)
        labels[row, :n] = torch.tensor(it.labels)
        mask[row, :n] = 1
    inputs = ({"inputs_embeds": padded_states([trunk.of(it.input_ids) for it in items], width, left=False)}
              if trunk else {"input_ids": ids.to(device)})
    return {**inputs, "attention_mask": mask.to(device), "labels": labels.to(device)}


def sft_loss_sum(model: Any, batch: dict[str, Any], trunk: Trunk | None = None) -> tuple[Any, Any]:
    """Per-item summed next-token CE over reply tokens only, and per-item token counts; logits are computed
    only from the first reply position on (prompt positions need none). With a trunk, only the top layers run."""
    import torch.nn.functional as F

    labels = batch["labels"]
    width = labels.shape[1]
    labelled = (labels != IGNORE_INDEX).int()
    first = int(labelled.argmax(dim=1).min()) if labelled.any() else width - 1
    keep = width - max(first - 1, 0)
    with top_layers(model, trunk):
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, logits_to_keep=keep).logits
    targets = labels[:, width - keep + 1:]
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="none")
    return loss.view(targets.shape).sum(dim=1), (targets != IGNORE_INDEX).sum(dim=1)


def kl_batch(items: Sequence[KlItem], pad_id: int, device: Any, *, start: int = 0,
             trunk: Trunk | None = None) -> dict[str, Any]:
    """Left-padded prompts (explicit position ids, so padding changes nothing) for the answer-position loss: token
    ids, or with a trunk their cached states as inputs_embeds. `start` > 0: the rows hold each prompt from token
    `start` on and continue a cached prefix of that many tokens (positions and mask include it)."""
    import torch

    width = max(len(it.input_ids) - start for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.input_ids) - start
        ids[row, width - n:] = torch.tensor(it.input_ids[start:])
        mask[row, width - n:] = 1
    pos = start + (mask.cumsum(dim=1) - 1).clamp(min=0)
    if start:
        mask = torch.cat([torch.ones((len(items), start), dtype=torch.long), mask], dim=1)
    inputs = ({"inputs_embeds": padded_states([trunk.of(it.input_ids)[start:] for it in items], width, left=True)}
              if trunk else {"input_ids": ids.to(device)})
    return {**inputs, "attention_mask": mask.to(device), "position_ids": pos.to(device)}


def kl_target(items: Sequence[KlItem], vocab_size: int) -> Any:
    """Dense targets over the vocabulary: each item's teacher_probs on its label tokens, zero elsewhere."""
    import torch

    target = torch.zeros((len(items), vocab_size), dtype=torch.float32)
    for row, it in enumerate(items):
        for tid, p in zip(it.target_ids, it.target_probs):
            target[row, tid] += p
    return target


def answer_logprobs(model: Any, batch: dict[str, Any], trunk: Trunk | None = None) -> Any:
    """Log-softmax of the next-token distribution at the end of each (left-padded) prompt."""
    with top_layers(model, trunk):
        logits = model(**batch, logits_to_keep=1).logits[:, -1].float()
    return logits.log_softmax(dim=-1)


def kl_groups(items: Sequence[KlItem]) -> list[tuple[int, list[int]]]:
    """Partition item indices into (prefix length, members) by their prompts (agents/llm/prefix.py group_by_prefix): an
    item joins the previous group when forwarding the common prefix once saves tokens. Length 0: a padded batch."""
    return group_by_prefix([it.input_ids for it in items])


def kl_chunks(items: Sequence[KlItem], batch_size: int) -> list[tuple[int, list[KlItem]]]:
    """The forward passes of one step's KL items: (shared prefix length, items) for each prefix group cut to
    `batch_size`, then the ungrouped items in padded batches of `batch_size` (prefix length 0)."""
    groups = kl_groups(items)
    chunks = [(plen, [items[i] for i in m[s:s + batch_size]]) for plen, m in groups if plen
              for s in range(0, len(m), batch_size)]
    singles = [items[m[0]] for plen, m in groups if not plen]
    return chunks + [(0, singles[s:s + batch_size]) for s in range(0, len(singles), batch_size)]


def shared_prefix_logprobs(model: Any, items: Sequence[KlItem], plen: int, pad_id: int, device: Any,
                           trunk: Trunk | None = None) -> Any:
    """answer_logprobs for prompts sharing their first `plen` tokens: the prefix is forwarded once (with gradient)
    and its KV cache, repeated per item, serves the left-padded suffixes. Equal to the padded batch up to rounding.
    With a trunk both passes run the top layers only, on the cached states."""
    import torch

    if trunk:
        prefix = {"inputs_embeds": trunk.of(items[0].input_ids)[None, :plen]}
    else:
        prefix = {"input_ids": torch.tensor([items[0].input_ids[:plen]], dtype=torch.long, device=device)}
    with top_layers(model, trunk):
        out = model(**prefix, use_cache=True, logits_to_keep=1)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    cache.batch_repeat_interleave(len(items))
    batch = kl_batch(items, pad_id, device, start=plen, trunk=trunk)
    return answer_logprobs(model, {**batch, "cache": cache, "use_cache": True}, trunk)


def kl_losses(model: Any, items: Sequence[KlItem], pad_id: int, device: Any, *, plen: int = 0,
              trunk: Trunk | None = None) -> tuple[Any, Any]:
    """Per-item cross-entropy of the student's answer distribution against the target, and KL = CE - H(target);
    `plen` > 0: the items share that many leading tokens, forwarded once (see `kl_groups`); with a trunk, only the
    layers above it run, on its cached states."""
    if plen > 0:
        logp = shared_prefix_logprobs(model, items, plen, pad_id, device, trunk)
    else:
        logp = answer_logprobs(model, kl_batch(items, pad_id, device, trunk=trunk), trunk)
    target = kl_target(items, logp.shape[-1]).to(logp.device)
    ce = -(target * logp).sum(dim=-1)
    entropy = -(target * target.clamp_min(1e-12).log()).sum(dim=-1)
    return ce, ce.detach() - entropy
