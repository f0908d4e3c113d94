"""The fine-tuning recipe as a pydantic model: defaults are the study's recipe (LoRA r=8, alpha=16, dropout 0 on
q_proj+v_proj, lr 5e-5, cosine, 3 epochs, effective batch 64); a YAML file and CLI flags override it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tomarena.options import CommaTuple, load, validate


class FinetuneConfig(BaseModel):
    """Every knob of one LoRA fine-tune; unknown keys and out-of-range values are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(3, ge=1, description="passes over the training examples")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (caps epochs)")
    lr: float = Field(5e-5, gt=0, le=1.0, description="peak learning rate (AdamW)")
    scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="learning-rate schedule "
                                                               "after the warm-up")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps with a linear warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; None disables it")
    rank: int = Field(8, ge=1, le=1024, description="LoRA rank r")
    alpha: float = Field(16, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    targets: CommaTuple = Field(("q_proj", "v_proj"), min_length=1,
                                description="modules that get LoRA (comma list), or all-linear")
    lora_layers: int | None = Field(
        None, ge=1, description="LoRA only on the top N decoder layers (the targets inside them); None: every layer")
    cache_trunk: bool = Field(
        True, description="with lora_layers: run the frozen layers below the first LoRA layer once per distinct "
        "sequence (no gradient), keep their output states for the run, and forward only the top layers each step "
        "(same loss and gradients; llama, mistral, qwen2, qwen3)")
    batch_size: int = Field(8, ge=1, description="examples per forward pass")
    grad_accum: int = Field(8, ge=1, description="forward passes per optimizer step")
    max_length: int = Field(1024, ge=16, description="tokens per example; longer replies are cut at the end")
    seed: int = Field(0, description="seed of the LoRA initialisation and the example order")
    distill: Literal["none", "kl", "kl_only"] = Field(
        "none", description="kl: also fit the answer token to teacher_probs; kl_only: fit only that (no text loss), "
        "an epoch being kl_repeat passes over the answer-distribution items in steps of batch_size x grad_accum")
    kl_weight: float = Field(1.0, ge=0, description="weight of the answer-distribution loss")
    kl_repeat: int = Field(1, ge=1, le=64, description="passes over the (cheap, de-duplicated) answer-distribution "
                           "items per epoch (per pass over the text examples with distill: kl)")
    holdout_framings: CommaTuple = Field((), description="framing ids kept out of training (comma list)")
    holdout_games: CommaTuple = Field((), description="game ids kept out of training (comma list)")
    save_every: int = Field(50, ge=1, description="optimizer steps between resumable checkpoints")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to train (auto: cuda when "
                                                   "available)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype of the weights (auto: bfloat16 on a CUDA GPU that has it, else float32)")
    mixed_precision: Literal["no", "bf16", "auto"] = Field(
        "no", description="bf16: forward/backward under bf16 autocast, weights and optimizer in `dtype` (1.4-1.6x "
        "on CPUs with native bf16); auto: bf16 only where the CPU or GPU computes bf16 natively")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    progress: bool = Field(True, description="show a progress bar")

    @property
    def uses_kl(self) -> bool:
        """Whether the answer-distribution loss is trained (distill kl or kl_only)."""
        return self.distill != "none"

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step."""
        return self.batch_size * self.grad_accum


def make_config(values: dict[str, Any] | None = None, where: str | None = None) -> FinetuneConfig:
    """Build a FinetuneConfig from a dict, turning validation failures into a one-line ConfigError."""
    return validate(FinetuneConfig, values or {}, "fine-tuning", where)


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """The recipe: defaults, then the YAML file (its `finetune:` section when it has one), then the non-None
    `overrides` (CLI flags)."""
    return load(FinetuneConfig, path, overrides, noun="fine-tuning", section="finetune")
