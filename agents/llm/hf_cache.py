"""The KV-prefix cache of the transformers backend: key/value caches of token prefixes at batch size 1, kept in an
LRU across calls (repeated games resend the same system + game text and a growing history). A new prefix is built
by extending the cached prefix that shares the most tokens with it, so only the new tokens are forwarded.
torch is imported inside the method that runs the model (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from tomarena.agents.llm.prefix import MIN_PREFIX, Row, common_prefix

PREFIX_CACHE_TOKENS = 8192  # total tokens of KV kept in the prefix LRU (about 380 MB for SmolLM2 in fp32)


class PrefixCache:
    """An LRU of prefix KV caches holding at most `max_tokens` prefix tokens in all (at least one entry)."""

    def __init__(self, max_tokens: int = PREFIX_CACHE_TOKENS) -> None:
        self.max_tokens = max_tokens
        self.entries: OrderedDict[Row, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def closest(self, prefix: Row) -> tuple[Row | None, int]:
        """The cached key sharing the most tokens with `prefix` (at most all but its last) and that count."""
        best, shared = None, 0
        for key in self.entries:
            n = min(common_prefix(key, prefix), len(prefix) - 1)
            if n > shared:
                best, shared = key, n
        return best, shared

    def kv(self, model: Any, prefix: Row, stats: dict[str, int]) -> Any:
        """KV cache of `prefix`: from the LRU when seen before, else built from the cached prefix sharing the most
        tokens with it (copied, cropped to the shared part), forwarding only the rest. Counts into `stats`'
        prefix_tokens_reused and forward_tokens."""
        import torch

        if prefix in self.entries:
            self.entries.move_to_end(prefix)
            stats["prefix_tokens_reused"] += len(prefix)
            return self.entries[prefix]
        best, shared = self.closest(prefix)
        dev, kwargs = model.device, {}
        base: Row = ()
        if best is not None and shared >= MIN_PREFIX:
            self.entries.move_to_end(best)
            cache = copy.deepcopy(self.entries[best])
            if shared < len(best):
                cache.crop(shared - len(best))  # transformers 5: a negative count removes tokens
            kwargs["cache"], base = cache, prefix[:shared]
            stats["prefix_tokens_reused"] += shared
        new = prefix[len(base):]
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([new], device=dev),
                        attention_mask=torch.ones(1, len(prefix), dtype=torch.long, device=dev),
                        position_ids=torch.arange(len(base), len(prefix), device=dev)[None],
                        use_cache=True, logits_to_keep=1, **kwargs)
        self.entries[prefix] = out.cache if hasattr(out, "cache") else out.past_key_values
        stats["forward_tokens"] += len(new)
        self._evict()
        return self.entries[prefix]

    def _evict(self) -> None:
        while sum(map(len, self.entries)) > self.max_tokens and len(self.entries) > 1:
            self.entries.popitem(last=False)
