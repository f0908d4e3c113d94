"""Local transformers backend: exact option scoring and seeded generation, with optional PEFT adapter.

Scoring is the hot path of every tournament, so it does as little model work as possible: identical prompts
are scored once, and a prompt continues the KV of its longest cached whole-block prefix (agents/llm/hf_cache.py, kept
across calls: repeated games resend the same system + game text and a growing history), so only its new tokens are
forwarded; only the last few positions reach the LM head (agents/llm/hf_score.py).

With `batch_size` 1 (the default) every prompt's tail is forwarded on its own after those blocks, so its scores are
the same bits whatever else is in the call, in which order, on which executor (`batch_invariant`): runs can then be
cut into chunks by time and merged across requests on Ray. A larger `batch_size` left-pads tails that share a prefix
into one forward (agents/llm/prefix.py) -- faster where a wide matmul is cheap (a GPU) -- and a prompt's scores then
move in the last float bits with the company it keeps. Loading and hashing live in agents/llm/hf_load.py,
generation in agents/llm/hf_generate.py.
torch, transformers and peft are imported inside those modules' functions, so building a backend costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tomarena.agents.llm.embedded import EMBEDDED_ID, gguf_path
from tomarena.agents.llm.hf_cache import BlockCache, block_floor
from tomarena.agents.llm.hf_generate import generate_batch, generate_one, generation_params
from tomarena.agents.llm.hf_load import (
    check_options,
    load_model,
    resolve_adapter,
    resolve_model_path,
    weight_hashes,
)
from tomarena.agents.llm.hf_score import exclusive_logprobs, forward_rows, option_sequences, sequence_logprobs
from tomarena.agents.llm.prefix import Row, plan_batches, shared_prefix
from tomarena.agents.llm.sampling import check_sampling
from tomarena.errors import ConfigError
from tomarena.files import cache_root

__all__ = ["HFBackend"]


class HFBackend:
    """A local causal LM (safetensors dir or GGUF, optional PEFT adapter) that scores options and generates."""

    kind = "hf"

    def __init__(self, model: str, adapter: str | None = None, dtype: str = "float32", device: str = "cpu",
                 trust_remote_code: bool = False, gguf_file: str | None = None, batch_size: int = 1,
                 prefix_reuse: bool = True) -> None:
        check_options(dtype, device, batch_size)
        self.model_name = model
        if model == EMBEDDED_ID:  # resolved at load time: the one-off conversion should not run on resolve
            if not (cache_root() / "smollm2-135m-instruct" / "model.safetensors").is_file():
                gguf_path()  # not converted yet: fail now, with the install hint, if the package is missing
            self._path, self.gguf_file = None, None
        else:
            self._path, self.gguf_file = resolve_model_path(model, gguf_file)
        self.adapter = resolve_adapter(adapter)
        self.dtype, self.device, self.trust_remote_code = dtype, device, trust_remote_code
        self.batch_size, self.prefix_reuse = batch_size, prefix_reuse
        self._model: Any = None
        self._tok: Any = None
        self._prefix_cache = BlockCache()
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
        state.update(_model=None, _tok=None, _prefix_cache=BlockCache())
        return state

    def __repr__(self) -> str:
        return f"HFBackend({self.model_name!r}, adapter={self.adapter!r}, dtype={self.dtype!r})"

    @property
    def batch_invariant(self) -> bool:
        """Whether a prompt's scores are the same bits in any batch (one prompt per forward, `batch_size` 1)."""
        return self.batch_size == 1

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def load(self) -> None:
        """Load tokenizer, model and adapter (once); later calls are free."""
        if self._model is None:
            self._model, self._tok = load_model(self.path, self.gguf_file, self.adapter, self.model_name,
                                                self.dtype, self.device, self.trust_remote_code)

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (loads the model on first use)."""
        self.load()
        return self._tok

    def _reuse_prefixes(self) -> bool:
        """Whether rows may continue a cached prefix (not with sliding-window attention, whose caches crop badly)."""
        if not self.prefix_reuse:
            return False
        cfg = self._model.config.get_text_config(decoder=True)
        return not any("sliding" in str(t) for t in (getattr(cfg, "layer_types", None) or ()))

    # -- rendering ---------------------------------------------------------------------------------------
    def render_text(self, messages: list[dict[str, str]], answer_prefix: str = "") -> str:
        """The prompt text the model sees: chat template with the generation prompt, plus `answer_prefix`."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + answer_prefix

    def render(self, messages: list[dict[str, str]], answer_prefix: str = "") -> list[int]:
        """Token ids of the rendered prompt (no extra special tokens beyond the template's)."""
        return list(self.tokenizer(self.render_text(messages, answer_prefix), add_special_tokens=False).input_ids)

    def option_sequences(self, options: Sequence[str]) -> list[tuple[int, Row]]:
        """Distinct (option index, token ids) for every surface form of every option."""
        return option_sequences(self.tokenizer, options)

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
        seq_lp = sequence_logprobs(uniq, [s for _, s in seqs], self._plan_batches, self._forward_chunk)
        table = {u: exclusive_logprobs(seq_lp[k], seqs, len(options)) for k, u in enumerate(uniq)}
        self.stats["score_calls"] += 1
        self.stats["prompts"] += len(prompts)
        self.stats["unique_prompts"] += len(uniq)
        return np.stack([table[r] for r in rendered]), [len(r) for r in rendered]

    def _plan_batches(self, order: list[Row], needs: list[int]) -> list[list[Row]]:
        """Sorted rows cut into forward batches of at most `batch_size` (sharing long prefixes when reusing)."""
        return plan_batches(order, needs, self.batch_size, self._reuse_prefixes())

    def _forward_chunk(self, rows: list[Row], needs: list[int]) -> list[np.ndarray]:
        """Log-softmax of the last `need` positions of each row, one batched forward (after the whole blocks of
        their shared prefix)."""
        n_pre = block_floor(shared_prefix(rows, needs), self._prefix_cache.block) if self._reuse_prefixes() else 0
        kv = self._prefix_cache.kv(self._model, rows[0][:n_pre], self.stats) if n_pre else None
        out, forwarded = forward_rows(self._model, self._tok.pad_token_id, rows, needs, n_pre, kv)
        self.stats["rows"] += len(rows)
        self.stats["forward_tokens"] += forwarded
        return out

    # -- generation --------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[list[dict[str, str]]], max_new_tokens: int = 64, temperature: float = 1.0,
                 seeds: Sequence[int] | None = None, top_p: float = 1.0, top_k: int = 0,
                 repetition_penalty: float = 1.0) -> list[tuple[str, int, int]]:
        """Sampled answers (text, prompt tokens, completion tokens); each is drawn under its own seed. With
        `batch_size` 1 each prompt is generated alone (the same bits in any call); a larger one samples up to that
        many prompts in one padded generate() (much faster when answers are long; last-bit logit differences with
        the batch). temperature 0 = greedy. top_p 1 and top_k 0 turn truncation off and repetition_penalty 1 turns
        the penalty off; all are passed to transformers' generate() explicitly, so the model's
        generation_config.json never adds its own."""
        check_sampling(top_p, top_k, repetition_penalty)
        self.load()
        seeds = list(seeds) if seeds is not None else [0] * len(prompts)
        if len(seeds) != len(prompts):
            raise ConfigError(f"generate needs one seed per prompt: {len(prompts)} prompts, {len(seeds)} seeds")
        self.stats["generate_calls"] += 1
        params = generation_params(max_new_tokens, temperature, top_p, top_k, repetition_penalty)
        rendered = [self.render(p) for p in prompts]
        if self.batch_size == 1:
            return [generate_one(self._model, self._tok, r, params, s) for r, s in zip(rendered, seeds, strict=True)]
        step = self.batch_size
        return [answer for i in range(0, len(rendered), step)
                for answer in generate_batch(self._model, self._tok, rendered[i:i + step], params, seeds[i:i + step])]

    # -- identity ----------------------------------------------------------------------------------------
    def hashes(self) -> dict[str, str | None]:
        """sha256 of the model weights and of the adapter weights (computed once, then cached)."""
        if self._hashes is None:
            self._hashes = weight_hashes(self.path, self.gguf_file, self.adapter)
        return self._hashes

    def file_hashes(self) -> dict[str, str]:
        """The model path (unless it is the embedded model's id) and the adapter path, as given, each with its
        weights' sha256 (paths whose weights cannot be hashed are left out)."""
        hashes = self.hashes()
        paths = {self.model_name: hashes["model_sha256"] if self.model_name != EMBEDDED_ID else None,
                 self.adapter: hashes["adapter_sha256"]}
        return {path: f"sha256:{digest}" for path, digest in paths.items() if path and digest}

    def describe(self) -> dict[str, Any]:
        """Model and adapter paths, dtype/device and weight hashes, for the run manifest."""
        return {"backend": self.kind, "model": self.model_name, "model_path": str(self.path),
                "gguf_file": self.gguf_file, "adapter": self.adapter, "dtype": self.dtype, "device": self.device,
                **self.hashes()}
