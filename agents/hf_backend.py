"""Local transformers backend: exact option scoring and seeded generation, with optional PEFT adapter.

Scoring is the hot path of every tournament, so it does as little model work as possible: identical prompts
are scored once, rows are sorted and cut into batches by a cost model so each batch shares a long token prefix,
whose KV cache is built once by extending the longest cached prefix (kept across calls: repeated games resend the
same system + game text and a growing history), suffixes are left-padded after that prefix with explicit position
ids, and only the last few positions reach the LM head.
torch, transformers and peft are imported inside methods, so building a backend costs nothing.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tomarena.agents.embedded import EMBEDDED_ID, cache_root, embedded_model_dir, gguf_path
from tomarena.agents.prefix import common_prefix
from tomarena.errors import BackendError, ConfigError

DTYPES = ("float32", "bfloat16", "float16", "auto")
DEVICES = ("cpu", "cuda", "mps", "auto")
MIN_PREFIX = 8  # shorter shared prefixes are not worth a separate forward
PREFIX_CACHE_TOKENS = 8192  # total tokens of KV kept in the prefix LRU (about 380 MB for SmolLM2 in fp32)


def quiet_transformers() -> None:
    """Silence transformers' per-load weight progress bars and a peft/transformers deprecation notice that
    say nothing to a tomarena user (tomarena shows its own progress)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def resolve_model_path(model: str, gguf_file: str | None = None) -> tuple[Path, str | None]:
    """The local directory (and GGUF file name) for a model path or registry id; missing paths raise."""
    if model == EMBEDDED_ID:
        return embedded_model_dir(), None  # converts the shipped GGUF once (~30 s), then a cache hit
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and gguf_file is None:
        path, gguf_file = path.parent, path.name
    if not path.is_dir():
        raise ConfigError(f"model path {model!r} is not a local directory; give a directory with config + "
                          f"safetensors, a .gguf file, or {EMBEDDED_ID}")
    if gguf_file is not None and not (path / gguf_file).is_file():
        raise ConfigError(f"GGUF file {gguf_file!r} not found in {str(path)!r}")
    return path, gguf_file


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (library errors are often paragraphs)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _sha256(files: Sequence[Path]) -> str | None:
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class HFBackend:
    """A local causal LM (safetensors dir or GGUF, optional PEFT adapter) that scores options and generates."""

    kind = "hf"

    def __init__(self, model: str, adapter: str | None = None, dtype: str = "float32", device: str = "cpu",
                 trust_remote_code: bool = False, gguf_file: str | None = None, batch_size: int = 16,
                 prefix_reuse: bool = True) -> None:
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
        if device not in DEVICES:
            raise ConfigError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model
        if model == EMBEDDED_ID:  # resolved at load time: the one-off conversion should not run on resolve
            if not (cache_root() / "smollm2-135m-instruct" / "model.safetensors").is_file():
                gguf_path()  # not converted yet: fail now, with the install hint, if the package is missing
            self._path, self.gguf_file = None, None
        else:
            self._path, self.gguf_file = resolve_model_path(model, gguf_file)
        self.adapter = None if adapter in (None, "") else str(Path(adapter).expanduser())
        if self.adapter is not None and not (Path(self.adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"adapter path {adapter!r} is not a PEFT adapter directory (no adapter_config.json)")
        self.dtype, self.device, self.trust_remote_code = dtype, device, trust_remote_code
        self.batch_size, self.prefix_reuse = batch_size, prefix_reuse
        self._model: Any = None
        self._tok: Any = None
        self._prefix_cache: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._hashes: dict[str, str | None] | None = None
        self.stats = {"score_calls": 0, "prompts": 0, "unique_prompts": 0, "rows": 0, "forward_tokens": 0,
                      "prefix_tokens_reused": 0, "generate_calls": 0}

    @property
    def path(self) -> Path:
        """The local model directory (the embedded model is converted on first access)."""
        if self._path is None:
            self._path, self.gguf_file = resolve_model_path(self.model_name, None)
        return self._path

    # -- loading ---------------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_model=None, _tok=None, _prefix_cache=OrderedDict())
        return state

    def __repr__(self) -> str:
        return f"HFBackend({self.model_name!r}, adapter={self.adapter!r}, dtype={self.dtype!r})"

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def _torch_device(self) -> str:
        import torch

        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def load(self) -> None:
        """Load tokenizer, model and adapter (once); later calls are free."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": self.trust_remote_code}
        if self.gguf_file:
            common["gguf_file"] = self.gguf_file
        try:
            tok = AutoTokenizer.from_pretrained(self.path, **common)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load the tokenizer from {str(self.path)!r}: {_one_line(exc)}") from exc
        if not getattr(tok, "chat_template", None):
            raise BackendError(f"the tokenizer in {str(self.path)!r} has no chat template; use an instruct model")
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        kw = dict(common, dtype=dtype) if self.gguf_file else dict(common, dtype=dtype, use_safetensors=True)
        try:
            model = AutoModelForCausalLM.from_pretrained(self.path, **kw)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load the model from {str(self.path)!r}: {_one_line(exc)}") from exc
        if self.adapter:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, self.adapter)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise BackendError(f"cannot load adapter {self.adapter!r} on {self.model_name!r}: "
                                   f"{_one_line(exc)}") from exc
            # folding the LoRA deltas into the weights makes the student exactly as fast as the base model
            # (inference only; the adapter files on disk stay as they are)
            model = model.merge_and_unload()
        self._model = model.to(self._torch_device()).eval()
        self._tok = tok

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (loads the model on first use)."""
        self.load()
        return self._tok

    def _sliding(self) -> bool:
        cfg = self._model.config.get_text_config(decoder=True)
        return any("sliding" in str(t) for t in (getattr(cfg, "layer_types", None) or ()))

    # -- rendering ---------------------------------------------------------------------------------------
    def render_text(self, messages: list[dict[str, str]], answer_prefix: str = "") -> str:
        """The prompt text the model sees: chat template with the generation prompt, plus `answer_prefix`."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + answer_prefix

    def render(self, messages: list[dict[str, str]], answer_prefix: str = "") -> list[int]:
        """Token ids of the rendered prompt (no extra special tokens beyond the template's)."""
        return list(self.tokenizer(self.render_text(messages, answer_prefix), add_special_tokens=False).input_ids)

    def option_sequences(self, options: Sequence[str]) -> list[tuple[int, tuple[int, ...]]]:
        """Distinct (option index, token ids) for every surface form of every option."""
        seen: dict[tuple[int, ...], int] = {}
        for i, opt in enumerate(options):
            for v in (opt, " " + opt):
                ids = tuple(self.tokenizer(v, add_special_tokens=False).input_ids)
                if ids and ids not in seen:
                    seen[ids] = i
        return [(i, s) for s, i in seen.items()]

    # -- scoring -----------------------------------------------------------------------------------------
    def score(self, prompts: Sequence[list[dict[str, str]]], options: Sequence[str],
              answer_prefix: str = "") -> np.ndarray:
        """Log-probability [n_prompts, n_options] that the answer starts with each option; the mass on
        neither is 1 - exp(row).sum()."""
        return self.score_detailed(prompts, options, answer_prefix)[0]

    def score_detailed(self, prompts: Sequence[list[dict[str, str]]], options: Sequence[str],
                       answer_prefix: str = "") -> tuple[np.ndarray, list[int]]:
        """Like `score`, plus the prompt token count of each prompt."""
        self.load()
        if not prompts:
            return np.zeros((0, len(options))), []
        rendered = [tuple(self.render(p, answer_prefix)) for p in prompts]
        uniq = list(dict.fromkeys(rendered))
        seqs = self.option_sequences(options)
        seq_lp = self._sequence_logprobs(uniq, [s for _, s in seqs])
        table = {u: _exclusive_logprobs(seq_lp[k], seqs, len(options)) for k, u in enumerate(uniq)}
        self.stats["score_calls"] += 1
        self.stats["prompts"] += len(prompts)
        self.stats["unique_prompts"] += len(uniq)
        return np.stack([table[r] for r in rendered]), [len(r) for r in rendered]

    def _sequence_logprobs(self, prompts: list[tuple[int, ...]], seqs: list[tuple[int, ...]]) -> np.ndarray:
        """log P(prompt is followed by seq) for every unique prompt x option sequence: [n_prompts, n_seqs]."""
        rows: dict[tuple[int, ...], int] = {}  # row ids -> how many final positions are needed
        for p in prompts:
            for s in seqs:
                key = p + s[:-1]
                rows[key] = max(rows.get(key, 0), len(s))
        order = sorted(rows)
        logps: dict[tuple[int, ...], np.ndarray] = {}
        for chunk in self._batches(order, [rows[k] for k in order]):
            for key, lp in zip(chunk, self._forward_chunk(chunk, [rows[k] for k in chunk]), strict=True):
                logps[key] = lp
        out = np.empty((len(prompts), len(seqs)))
        for i, p in enumerate(prompts):
            for j, s in enumerate(seqs):
                lp = logps[p + s[:-1]]
                out[i, j] = sum(float(lp[lp.shape[0] - len(s) + t, tok]) for t, tok in enumerate(s))
        return out

    def _batches(self, order: list[tuple[int, ...]], needs: list[int]) -> list[list[tuple[int, ...]]]:
        """Cut sorted rows into batches of at most `batch_size`, greedily: a row joins the open batch when the
        batch still shares at least half of the row as prefix (long prefixes are what later calls reuse) and that
        costs fewer forwarded tokens (shared prefix once + padded suffixes) than starting a batch of its own."""
        if not self.prefix_reuse or self._sliding():
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches: list[list[tuple[int, ...]]] = []
        cur: list[tuple[int, ...]] = []
        pre = width = 0  # shared prefix length of `cur`, longest row of `cur`

        def cost(n: int, p: int, w: int) -> int:
            p = p if p >= MIN_PREFIX else 0
            return p + n * (w - p)

        for row, need in zip(order, needs, strict=True):
            if cur and len(cur) < self.batch_size:
                p2 = min(pre, common_prefix(cur[0], row), len(row) - need)
                w2 = max(width, len(row))
                if 2 * p2 >= len(row) and cost(len(cur) + 1, p2, w2) <= cost(len(cur), pre, width) + len(row):
                    cur.append(row)
                    pre, width = p2, w2
                    continue
            if cur:
                batches.append(cur)
            cur, pre, width = [row], len(row) - need, len(row)
        if cur:
            batches.append(cur)
        return batches

    def _prefix_len(self, rows: list[tuple[int, ...]], needs: list[int]) -> int:
        if not self.prefix_reuse or self._sliding():
            return 0
        first, n = rows[0], min(len(r) - k for r, k in zip(rows, needs))
        for r in rows[1:]:
            n = min(n, common_prefix(first, r))
        return n if n >= MIN_PREFIX else 0

    def _prefix_kv(self, prefix: tuple[int, ...]) -> Any:
        """KV cache of `prefix` at batch size 1: from the LRU when seen before, else built from the cached
        prefix sharing the most tokens with it (copied, cropped to the shared part), forwarding only the rest."""
        import torch

        if prefix in self._prefix_cache:
            self._prefix_cache.move_to_end(prefix)
            self.stats["prefix_tokens_reused"] += len(prefix)
            return self._prefix_cache[prefix]
        best, shared = None, 0
        for key in self._prefix_cache:
            n = min(common_prefix(key, prefix), len(prefix) - 1)
            if n > shared:
                best, shared = key, n
        dev, kwargs = self._model.device, {}
        base: tuple[int, ...] = ()
        if best is not None and shared >= MIN_PREFIX:
            self._prefix_cache.move_to_end(best)
            cache = copy.deepcopy(self._prefix_cache[best])
            if shared < len(best):
                cache.crop(shared - len(best))  # transformers 5: a negative count removes tokens
            kwargs["cache"], base = cache, prefix[:shared]
            self.stats["prefix_tokens_reused"] += shared
        new = prefix[len(base):]
        with torch.inference_mode():
            out = self._model(input_ids=torch.tensor([new], device=dev),
                              attention_mask=torch.ones(1, len(prefix), dtype=torch.long, device=dev),
                              position_ids=torch.arange(len(base), len(prefix), device=dev)[None],
                              use_cache=True, logits_to_keep=1, **kwargs)
        self._prefix_cache[prefix] = out.cache if hasattr(out, "cache") else out.past_key_values
        self.stats["forward_tokens"] += len(new)
        while sum(map(len, self._prefix_cache)) > PREFIX_CACHE_TOKENS and len(self._prefix_cache) > 1:
            self._prefix_cache.popitem(last=False)
        return self._prefix_cache[prefix]

    def _forward_chunk(self, rows: list[tuple[int, ...]], needs: list[int]) -> list[np.ndarray]:
        """Log-softmax of the last `need` positions of each row, one batched forward (after a shared prefix)."""
        import torch

        n_pre, keep = self._prefix_len(rows, needs), max(needs)
        suffixes = [r[n_pre:] for r in rows]
        width, dev = max(len(s) for s in suffixes), self._model.device
        pad = self._tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in suffixes], device=dev)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes], device=dev)
        pos = torch.tensor([[n_pre] * (width - len(s)) + list(range(n_pre, n_pre + len(s))) for s in suffixes],
                           device=dev)
        kwargs: dict[str, Any] = {}
        if n_pre:
            cache = copy.deepcopy(self._prefix_kv(rows[0][:n_pre]))
            cache.batch_repeat_interleave(len(rows))
            kwargs["cache"] = cache
            mask = torch.cat([torch.ones(len(rows), n_pre, dtype=mask.dtype, device=dev), mask], dim=1)
        with torch.inference_mode():
            logits = self._model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep,
                                 use_cache=bool(n_pre), **kwargs).logits
        lp = torch.log_softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
        self.stats["rows"] += len(rows)
        self.stats["forward_tokens"] += int(mask[:, n_pre:].sum())
        return [lp[i, keep - k:] for i, k in enumerate(needs)]

    # -- generation --------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 64, temperature: float = 1.0,
                 seeds: Sequence[int] | None = None, top_p: float = 1.0, top_k: int = 0,
                 repetition_penalty: float = 1.0) -> list[tuple[str, int, int]]:
        """Sampled answers (text, prompt tokens, completion tokens); each is seeded by its own seed, so the
        result does not depend on which other prompts are in the call. temperature 0 = greedy. top_p 1 and
        top_k 0 turn truncation off and repetition_penalty 1 turns the penalty off; all are passed to
        transformers' generate() explicitly, so the model's generation_config.json never adds its own."""
        from tomarena.agents.llm_policy import check_sampling

        check_sampling(top_p, top_k, repetition_penalty)
        self.load()
        seeds = list(seeds) if seeds is not None else [0] * len(prompts)
        if len(seeds) != len(prompts):
            raise ConfigError(f"generate needs one seed per prompt: {len(prompts)} prompts, {len(seeds)} seeds")
        self.stats["generate_calls"] += 1
        params = self.generation_params(max_new_tokens, temperature, top_p, top_k, repetition_penalty)
        return [self._generate_one(p, params, s) for p, s in zip(prompts, seeds, strict=True)]

    def generation_params(self, max_new_tokens: int, temperature: float, top_p: float = 1.0, top_k: int = 0,
                          repetition_penalty: float = 1.0) -> dict[str, Any]:
        """The keyword arguments given to transformers' generate(): sampling ones only when sampling (greedy
        ignores them), the repetition penalty always (it applies to greedy decoding too)."""
        params: dict[str, Any] = {"do_sample": temperature > 0, "max_new_tokens": int(max_new_tokens),
                                  "repetition_penalty": float(repetition_penalty)}
        if temperature > 0:
            params.update(temperature=float(temperature), top_p=float(top_p), top_k=int(top_k))
        return params

    def _generate_one(self, messages: list[dict[str, str]], params: dict[str, Any], seed: int) -> tuple[str, int, int]:
        import torch

        ids = torch.tensor([self.render(messages)], device=self._model.device)
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(int(seed) % (2**63))
            out = self._model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                       pad_token_id=self._tok.pad_token_id, **params)
        new = out[0, ids.shape[1]:]
        text = self._tok.decode(new, skip_special_tokens=True)
        return text, int(ids.shape[1]), int(new.shape[0])

    # -- identity ----------------------------------------------------------------------------------------
    def hashes(self) -> dict[str, str | None]:
        """sha256 of the model weights and of the adapter weights (computed once, then cached)."""
        if self._hashes is None:
            model_files = [self.path / self.gguf_file] if self.gguf_file else sorted(self.path.glob("*.safetensors"))
            adapter_files = sorted(Path(self.adapter).glob("*.safetensors")) if self.adapter else []
            self._hashes = {"model_sha256": _sha256(model_files), "adapter_sha256": _sha256(adapter_files)}
        return self._hashes

    def describe(self) -> dict[str, Any]:
        """Model and adapter paths, dtype/device and weight hashes, for the run manifest."""
        return {"backend": self.kind, "model": self.model_name, "model_path": str(self.path),
                "gguf_file": self.gguf_file, "adapter": self.adapter, "dtype": self.dtype, "device": self.device,
                **self.hashes()}


def _exclusive_logprobs(seq_lp: np.ndarray, seqs: list[tuple[int, tuple[int, ...]]], n_options: int) -> np.ndarray:
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

