"""The KV-prefix cache of the transformers backend: key/value blocks of `BLOCK` tokens, kept in an LRU across calls
(repeated games resend the same system + game text and a growing history).

A prompt's prefix is cut at multiples of `BLOCK` tokens; block k's keys and values are computed by forwarding its
tokens, at batch size 1, on top of blocks 0..k-1, and are keyed by every token up to its end. A cached prefix is the
concatenation of its blocks (exact), so the KV a prompt continues is the same bits whether its blocks were cached by
an earlier call, built in this call, or built in another process: scoring does not depend on call order.
torch is imported inside the method that runs the model (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tomarena.agents.llm.prefix import Row

BLOCK = 32  # tokens per KV block: prefixes are reused in whole blocks
PREFIX_CACHE_TOKENS = 8192  # total tokens of KV kept in the block LRU (about 380 MB for SmolLM2 in fp32)


def block_floor(n: int, block: int = BLOCK) -> int:
    """The longest whole-block prefix length within `n` tokens."""
    return n - n % block


class BlockCache:
    """An LRU of KV blocks holding at most `max_tokens` tokens in all (at least one block)."""

    def __init__(self, max_tokens: int = PREFIX_CACHE_TOKENS, block: int = BLOCK) -> None:
        self.max_tokens, self.block = max_tokens, block
        self.entries: OrderedDict[Row, list[tuple[Any, Any]]] = OrderedDict()  # prefix -> its last block's (K, V)

    def __len__(self) -> int:
        return len(self.entries)

    def cached_blocks(self, prefix: Row) -> int:
        """How many of `prefix`'s leading whole blocks are cached."""
        k = 0
        while (k + 1) * self.block <= len(prefix) and prefix[:(k + 1) * self.block] in self.entries:
            k += 1
        return k

    def kv(self, model: Any, prefix: Row, stats: dict[str, int]) -> Any:
        """A fresh KV cache of `prefix` (one or more whole blocks; the caller may extend it) at batch size 1: cached
        blocks are reused, the rest forwarded one block at a time and cached. Counts into `stats`'
        prefix_tokens_reused and forward_tokens."""
        import torch
        from transformers import DynamicCache

        b = self.block
        if not prefix or len(prefix) % b:
            raise ValueError(f"a cached prefix is a whole number of {b}-token blocks, got {len(prefix)} tokens")
        have = self.cached_blocks(prefix)
        blocks = [self.entries[prefix[:(k + 1) * b]] for k in range(have)]
        layers = [(torch.cat([blk[i][0] for blk in blocks], dim=-2), torch.cat([blk[i][1] for blk in blocks], dim=-2))
                  for i in range(len(blocks[0]))] if blocks else None
        cache = DynamicCache(ddp_cache_data=layers)
        stats["prefix_tokens_reused"] += have * b
        dev = model.device
        for k in range(have, len(prefix) // b):
            with torch.inference_mode():
                model(input_ids=torch.tensor([prefix[k * b:(k + 1) * b]], device=dev),
                      position_ids=torch.arange(k * b, (k + 1) * b, device=dev)[None],
                      cache=cache, use_cache=True, logits_to_keep=1)
            self.entries[prefix[:(k + 1) * b]] = [(layer.keys[..., k * b:, :].clone(),
                                                   layer.values[..., k * b:, :].clone()) for layer in cache.layers]
            stats["forward_tokens"] += b
        for k in reversed(range(len(prefix) // b)):  # the leading blocks are the most shared: evicted last
            self.entries.move_to_end(prefix[:(k + 1) * b])
        self._evict()
        return cache

    def _evict(self) -> None:
        while len(self.entries) * self.block > self.max_tokens and len(self.entries) > 1:
            self.entries.popitem(last=False)
