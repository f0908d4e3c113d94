"""The fine-tuning recipe as a pydantic model: defaults are the study's recipe (LoRA r=8, alpha=16, dropout 0 on
q_proj+v_proj, lr 5e-5, cosine, 3 epochs, effective batch 64); a YAML file and CLI flags override it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tomarena.errors import ConfigError


class FinetuneConfig(BaseModel):
    """Every knob of one LoRA fine-tune; unknown keys and out-of-range values are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(3, ge=1, description="passes over the training examples")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (caps epochs)")
    lr: float = Field(5e-5, gt=0, le=1.0, description="peak learning rate (AdamW)")
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps with a linear warm-up")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping; None disables it")
    rank: int = Field(8, ge=1, le=1024, description="LoRA rank r")
    alpha: float = Field(16, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    targets: tuple[str, ...] = Field(("q_proj", "v_proj"), min_length=1, description="modules that get LoRA")
    lora_layers: int | None = Field(
        None, ge=1, description="LoRA only on the top N decoder layers (the targets inside them); None: every layer")
    cache_trunk: bool = Field(
        True, description="with lora_layers: run the frozen layers below the first LoRA layer once per distinct "
        "sequence (no gradient), keep their output states for the run, and forward only the top layers each step "
        "(same loss and gradients; llama, mistral, qwen2, qwen3)")
    batch_size: int = Field(8, ge=1, description="examples per forward pass")
    grad_accum: int = Field(8, ge=1, description="forward passes per optimizer step")
    max_length: int = Field(1024, ge=16, description="tokens per example; longer replies are cut at the end")
    seed: int = 0
    distill: Literal["none", "kl", "kl_only"] = Field(
        "none", description="kl: also fit the answer token to teacher_probs; kl_only: fit only that (no text loss), "
        "an epoch being kl_repeat passes over the answer-distribution items in steps of batch_size x grad_accum")
    kl_weight: float = Field(1.0, ge=0, description="weight of the answer-distribution loss")
    kl_repeat: int = Field(1, ge=1, le=64, description="passes over the (cheap, de-duplicated) answer-distribution "
                           "items per epoch (per pass over the text examples with distill: kl)")
    holdout_framings: tuple[str, ...] = ()
    holdout_games: tuple[str, ...] = ()
    save_every: int = Field(50, ge=1, description="optimizer steps between resumable checkpoints")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    mixed_precision: Literal["no", "bf16", "auto"] = Field(
        "no", description="bf16: forward/backward under bf16 autocast, weights and optimizer in `dtype` (1.4-1.6x "
        "on CPUs with native bf16); auto: bf16 only where the CPU or GPU computes bf16 natively")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    progress: bool = True

    @field_validator("targets", "holdout_framings", "holdout_games", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @property
    def uses_kl(self) -> bool:
        """Whether the answer-distribution loss is trained (distill kl or kl_only)."""
        return self.distill != "none"

    @property
    def effective_batch(self) -> int:
        """Examples per optimizer step."""
        return self.batch_size * self.grad_accum


def _one_line(exc: ValidationError, where: str) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(FinetuneConfig.model_fields)
        return ConfigError(f"unknown fine-tuning key {key!r} in {where}; allowed: {allowed}")
    return ConfigError(f"bad fine-tuning value {key}={err.get('input')!r} in {where}: {err['msg']}")


def make_config(values: dict[str, Any] | None = None, where: str = "config") -> FinetuneConfig:
    """Build a FinetuneConfig from a dict, turning validation failures into a one-line ConfigError."""
    try:
        return FinetuneConfig(**(values or {}))
    except ValidationError as exc:
        raise _one_line(exc, where) from exc


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML config file (a `finetune:` section is used when present)."""
    import yaml

    if not Path(path).is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if isinstance(data, dict) and isinstance(data.get("finetune"), dict):
        data = data["finetune"]
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of fine-tuning keys, got {type(data).__name__}")
    return data


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> FinetuneConfig:
    """The recipe: defaults, then the YAML file, then the non-None `overrides` (CLI flags)."""
    values = read_yaml(path) if path else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return make_config(values, where=str(path) if path else "flags")
