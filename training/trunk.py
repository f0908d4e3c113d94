"""Cached trunk: with LoRA only on the top decoder layers, the frozen layers below them compute the same hidden states
for a token sequence at every step. They are run once per distinct sequence (no gradient) and kept; every training
forward then runs only the top layers (+ final norm + lm_head) on those states, with the same loss and gradients.

How: the decoder's `layers` ModuleList temporarily holds only a window of its layers and the model is called with
`inputs_embeds=<cached states>`. This is exact only for decoders whose forward adds nothing to `inputs_embeds`,
computes rotary embeddings and the causal mask from position ids / the attention mask alone, and picks each layer's
mask by module (or by an index that means the same layer inside the window): checked in transformers 5.x for the
model types in TRUNK_MODEL_TYPES (Gemma scales, Granite multiplies the embeddings: not listed). Inside the top
window each attention module is renumbered 0..N-1, so a KV cache (shared-prefix forwarding) sizes its mask from
the window's first layer.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from tomarena.errors import ConfigError

TRUNK_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass
class Trunk:
    """Hidden states after the first `start` decoder layers, one tensor [tokens, hidden] per distinct sequence."""

    start: int
    states: dict[tuple[int, ...], Any] = field(default_factory=dict)
    seconds: float = 0.0

    def of(self, ids: tuple[int, ...]) -> Any:
        """The cached states of one token sequence (KeyError if it was never built)."""
        return self.states[tuple(ids)]

    def summary(self) -> dict[str, Any]:
        """What the manifest records: cached layers, sequences, tokens and build seconds."""
        return {"cached_layers": self.start, "sequences": len(self.states),
                "tokens": sum(int(s.shape[0]) for s in self.states.values()), "seconds": round(self.seconds, 3)}


def hf_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model: Any) -> Any:
    """The decoder stack (the module holding `layers` and `norm`) of a causal LM, PEFT-wrapped or not."""
    hf = hf_model(model)
    return getattr(hf, hf.base_model_prefix)


def n_layers(model: Any) -> int:
    """Number of decoder layers of the model."""
    return len(decoder_of(model).layers)


def check_cacheable(config: Any, n_top: int) -> None:
    """ConfigError unless running the top `n_top` layers on cached states is exact for this model config."""
    kind = getattr(config, "model_type", None)
    if kind not in TRUNK_MODEL_TYPES:
        raise ConfigError(f"cache_trunk supports model types {', '.join(TRUNK_MODEL_TYPES)}, not {kind!r}; "
                          f"set cache_trunk: false")
    types = list(getattr(config, "layer_types", None) or [])
    if types and types[:n_top] != types[len(types) - n_top:]:
        raise ConfigError(f"cache_trunk needs the top {n_top} layers to have the attention types of the first "
                          f"{n_top} ({types[len(types) - n_top:]} vs {types[:n_top]}); set cache_trunk: false")


@contextmanager
def layer_window(model: Any, start: int, stop: int) -> Iterator[None]:
    """Let the decoder run only layers [start, stop) (attention renumbered from 0); without the final norm when the
    window stops below the top. Restored on exit."""
    import torch

    dec = decoder_of(model)
    layers, norm = dec.layers, dec.norm
    window = list(layers)[start:stop]
    old_idx = [layer.self_attn.layer_idx for layer in window]
    try:
        dec.layers = torch.nn.ModuleList(window)
        for j, layer in enumerate(window):
            layer.self_attn.layer_idx = j
        if stop < len(layers):
            dec.norm = torch.nn.Identity()
        yield
    finally:
        dec.layers, dec.norm = layers, norm
        for layer, idx in zip(window, old_idx):
            layer.self_attn.layer_idx = idx


def top_layers(model: Any, trunk: Trunk | None) -> Any:
    """Context running only the layers above the trunk (a no-op context without a trunk)."""
    return layer_window(model, trunk.start, n_layers(model)) if trunk else nullcontext()


def build_trunk(model: Any, sequences: Iterable[tuple[int, ...]], start: int, bf16: bool = False) -> Trunk:
    """Run the first `start` layers once per distinct sequence (eval mode, no gradient, batch of one, under bf16
    autocast when `bf16` as training is) and keep their output states."""
    import torch

    device = next(model.parameters()).device
    dec, trunk, was_training = decoder_of(model), Trunk(start), model.training
    t0 = time.perf_counter()
    model.eval()
    try:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        with torch.no_grad(), autocast, layer_window(model, 0, start):
            for ids in dict.fromkeys(tuple(s) for s in sequences):
                out = dec(input_ids=torch.tensor([ids], device=device), use_cache=False)
                trunk.states[ids] = out.last_hidden_state[0].clone()
    finally:
        model.train(was_training)
    trunk.seconds = time.perf_counter() - t0
    return trunk
