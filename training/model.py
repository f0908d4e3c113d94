"""Model side of fine-tuning: find the base model, load it with a fresh LoRA adapter, build padded batches,
and compute the two losses (masked next-token CE on replies; CE of the answer token against teacher_probs)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tomarena.errors import BackendError, ConfigError
from tomarena.training.config import FinetuneConfig
from tomarena.training.data import IGNORE_INDEX, KlItem, SftItem, check_chat_template

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf")


def resolve_base(base: str) -> Path:
    """A local HF model directory for `base` (a path, or the embedded model's id); BackendError if missing."""
    from tomarena.agents.embedded import EMBEDDED_ID, embedded_model_dir

    base = base.split("?", 1)[0]
    base = base.removeprefix("hf:")  # a policy spec's model part is accepted too
    path = embedded_model_dir() if base == EMBEDDED_ID else Path(base).expanduser()
    if not (path / "config.json").is_file():
        raise BackendError(f"base model {base!r} not found: give a local Hugging Face model directory "
                           f"(with config.json) or {EMBEDDED_ID!r}")
    return path.resolve()


def sha256_file(path: Path, h: Any = None) -> str:
    """Hex sha256 of one file (or feed it into `h` and return its running digest)."""
    h = h or hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_weights(model_dir: Path) -> str:
    """One sha256 over the model's weight files, in name order."""
    files = sorted({f for pat in WEIGHT_PATTERNS for f in Path(model_dir).glob(pat)})
    if not files:
        raise BackendError(f"base model directory {model_dir} holds no weight files ({', '.join(WEIGHT_PATTERNS)})")
    h = hashlib.sha256()
    digest = ""
    for f in files:
        h.update(f.name.encode())
        digest = sha256_file(f, h)
    return digest


def pick_device(config: FinetuneConfig) -> tuple[Any, Any]:
    """(torch.device, torch dtype) from the config's `device` and `dtype` ('auto' picks CUDA+bf16 when present)."""
    import torch

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA GPU; allowed here: auto, cpu")
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    if config.dtype != "auto":
        dtype = getattr(torch, config.dtype)
    else:
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return torch.device("cuda" if cuda else "cpu"), dtype


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


def load_tokenizer(base_dir: Path) -> Any:
    """The base model's tokenizer, checked for a chat template and given a pad token."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base_dir, local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # transformers raises many types for a broken directory
        raise BackendError(f"cannot load the tokenizer of {base_dir}: {str(exc).splitlines()[0]}") from None
    check_chat_template(tok, str(base_dir))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_lora_model(base_dir: Path, config: FinetuneConfig) -> Any:
    """The base model (frozen) wrapped by PEFT with a new LoRA adapter on `config.targets`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tomarena.agents.hf_backend import quiet_transformers

    quiet_transformers()
    device, dtype = pick_device(config)
    try:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, use_safetensors=True,
                                                    local_files_only=True, trust_remote_code=False)
    except Exception as exc:
        raise BackendError(f"cannot load the base model {base_dir}: {str(exc).splitlines()[0]}") from None
    targets: Any = "all-linear" if config.targets == ("all-linear",) else list(config.targets)
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    torch.manual_seed(config.seed)
    try:
        model = get_peft_model(base, lora)
    except ValueError as exc:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in base.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"LoRA targets {list(config.targets)} do not fit this model ({str(exc).splitlines()[0]}); "
                          f"its linear modules: {', '.join(names)}") from None
    return model.to(device)


def sft_batch(items: Sequence[SftItem], pad_id: int, device: Any) -> dict[str, Any]:
    """Right-padded input_ids / attention_mask / labels tensors for a micro-batch."""
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
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def sft_loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """Per-item summed next-token CE over reply tokens only, and per-item token counts; logits are computed
    only from the first reply position on (prompt positions need none)."""
    import torch.nn.functional as F

    labels = batch["labels"]
    width = labels.shape[1]
    labelled = (labels != IGNORE_INDEX).int()
    first = int(labelled.argmax(dim=1).min()) if labelled.any() else width - 1
    keep = width - max(first - 1, 0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    targets = labels[:, width - keep + 1:]
    loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="none")
    return loss.view(targets.shape).sum(dim=1), (targets != IGNORE_INDEX).sum(dim=1)


def kl_batch(items: Sequence[KlItem], pad_id: int, device: Any, *, start: int = 0) -> dict[str, Any]:
    """Left-padded prompts (explicit position ids, so padding changes nothing) for the answer-position loss;
    `start` > 0: the rows continue a cached prefix of that many tokens (positions and mask include it)."""
    import torch

    width = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.input_ids)
        ids[row, width - n:] = torch.tensor(it.input_ids)
        mask[row, width - n:] = 1
    pos = start + (mask.cumsum(dim=1) - 1).clamp(min=0)
    if start:
        mask = torch.cat([torch.ones((len(items), start), dtype=torch.long), mask], dim=1)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": pos.to(device)}


def kl_target(items: Sequence[KlItem], vocab_size: int) -> Any:
    """Dense targets over the vocabulary: each item's teacher_probs on its label tokens, zero elsewhere."""
    import torch

    target = torch.zeros((len(items), vocab_size), dtype=torch.float32)
    for row, it in enumerate(items):
        for tid, p in zip(it.target_ids, it.target_probs):
            target[row, tid] += p
    return target


def answer_logprobs(model: Any, batch: dict[str, Any]) -> Any:
    """Log-softmax of the next-token distribution at the end of each (left-padded) prompt."""
    logits = model(**batch, logits_to_keep=1).logits[:, -1].float()
    return logits.log_softmax(dim=-1)


def kl_groups(items: Sequence[KlItem]) -> list[tuple[int, list[int]]]:
    """Partition item indices into (prefix length, members): prompts sorted, and an item joins the previous group
    when forwarding the group's common prefix once plus every (left-padded) suffix costs fewer tokens than
    forwarding the item on its own. Prefix length 0 means an ordinary padded batch."""
    from tomarena.agents.hf_backend import _common

    order = sorted(range(len(items)), key=lambda i: items[i].input_ids)
    groups: list[tuple[int, list[int]]] = []

    def cost(plen: int, members: list[int]) -> int:
        return plen + len(members) * max(len(items[m].input_ids) - plen for m in members)

    for i in order:
        ids = items[i].input_ids
        if groups:
            plen, members = groups[-1]
            shared = min(_common(items[members[0]].input_ids, ids), plen, len(ids) - 1)  # singleton: len - 1
            merged = [*members, i]
            if shared > 0 and cost(shared, merged) < cost(plen, members) + len(ids):
                groups[-1] = (shared, merged)
                continue
        groups.append((len(ids) - 1, [i]))
    return [(plen if len(m) > 1 else 0, m) for plen, m in groups]


def kl_chunks(items: Sequence[KlItem], batch_size: int) -> list[tuple[int, list[KlItem]]]:
    """The forward passes of one step's KL items: (shared prefix length, items) for each prefix group cut to
    `batch_size`, then the ungrouped items in padded batches of `batch_size` (prefix length 0)."""
    groups = kl_groups(items)
    chunks = [(plen, [items[i] for i in m[s:s + batch_size]]) for plen, m in groups if plen
              for s in range(0, len(m), batch_size)]
    singles = [items[m[0]] for plen, m in groups if not plen]
    return chunks + [(0, singles[s:s + batch_size]) for s in range(0, len(singles), batch_size)]


def shared_prefix_logprobs(model: Any, items: Sequence[KlItem], plen: int, pad_id: int, device: Any) -> Any:
    """answer_logprobs for prompts sharing their first `plen` tokens: the prefix is forwarded once (with gradient)
    and its KV cache, repeated per item, serves the left-padded suffixes. Equal to the padded batch up to rounding."""
    import dataclasses

    import torch

    prefix = torch.tensor([items[0].input_ids[:plen]], dtype=torch.long, device=device)
    out = model(input_ids=prefix, use_cache=True, logits_to_keep=1)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    cache.batch_repeat_interleave(len(items))
    suffixes = [dataclasses.replace(it, input_ids=it.input_ids[plen:]) for it in items]
    return answer_logprobs(model, {**kl_batch(suffixes, pad_id, device, start=plen), "cache": cache,
                                   "use_cache": True})


def kl_losses(model: Any, items: Sequence[KlItem], pad_id: int, device: Any, *, plen: int = 0) -> tuple[Any, Any]:
    """Per-item cross-entropy of the student's answer distribution against the target, and KL = CE - H(target);
    `plen` > 0: the items share that many leading tokens, forwarded once (see `kl_groups`)."""
    if plen > 0:
        logp = shared_prefix_logprobs(model, items, plen, pad_id, device)
    else:
        logp = answer_logprobs(model, kl_batch(items, pad_id, device))
    target = kl_target(items, logp.shape[-1]).to(logp.device)
    ce = -(target * logp).sum(dim=-1)
    entropy = -(target * target.clamp_min(1e-12).log()).sum(dim=-1)
    return ce, ce.detach() - entropy
