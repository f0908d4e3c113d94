"""The fine-tune loop's state as typed values: the running sums of one epoch (`Sums`) and where the run stands
(`LoopState`: step, epoch, per-epoch metrics, totals, the fingerprint a resume must match). A checkpoint stores the
state as JSON (training/checkpoint.py) and a resumed run gets back an equal value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tomarena.errors import ConfigError


@dataclass
class Sums:
    """Sums over optimizer steps: weighted reply-token CE and its token count, answer KL and its weight, tokens
    forwarded, steps and seconds."""

    sft_sum: float = 0.0
    sft_tokens: float = 0.0
    kl_sum: float = 0.0
    kl_weight: float = 0.0
    tokens: int = 0
    steps: int = 0
    seconds: float = 0.0

    def add(self, other: Sums) -> None:
        """Add `other` into these sums, field by field."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def loss(self) -> float | None:
        """Mean reply-token cross-entropy (None without reply tokens)."""
        return self.sft_sum / self.sft_tokens if self.sft_tokens else None

    @property
    def kl(self) -> float | None:
        """Weighted mean answer KL (None without answer items)."""
        return self.kl_sum / self.kl_weight if self.kl_weight else None


@dataclass
class LoopState:
    """Where a fine-tune stands; saved with every checkpoint, restored on resume, read by the manifest."""

    fingerprint: dict[str, Any]  # config, traces and base-model hashes a resumed run must match
    step: int = 0
    epoch: int = 0
    acc: Sums = field(default_factory=Sums)  # the current epoch's sums
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch
    tokens: int = 0
    train_seconds: float = 0.0
    resumed_from_step: int | None = None
    bf16_autocast: bool = False

    def record(self, epoch: int, sums: Sums) -> None:
        """Count one optimizer step of `epoch` with its `sums` (closing the previous epoch's metrics row first)."""
        if epoch != self.epoch:
            self.close_epoch()
            self.epoch = epoch
        self.acc.add(sums)
        self.tokens += sums.tokens
        self.train_seconds += sums.seconds

    def close_epoch(self) -> None:
        """Append the current epoch's metrics row (if it took any step) and start fresh sums."""
        if self.acc.steps:
            a = self.acc
            self.metrics.append({"epoch": self.epoch + 1, "steps": a.steps, "loss": a.loss, "kl": a.kl,
                                 "tokens": a.tokens, "seconds": round(a.seconds, 3)})
        self.acc = Sums()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (what a checkpoint's state.json holds)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "checkpoint") -> LoopState:
        """The state `to_json` wrote; ConfigError naming `where` when keys are missing or unknown."""
        names = {f.name for f in fields(cls)}
        acc_names = {f.name for f in fields(Sums)}
        acc = data.get("acc")
        if set(data) - names or "fingerprint" not in data or not isinstance(acc, dict) or set(acc) - acc_names:
            raise ConfigError(f"{where} holds a loop state this version cannot read (keys: {', '.join(sorted(data))}); "
                              f"delete it to start over")
        return cls(**{**data, "acc": Sums(**acc)})
