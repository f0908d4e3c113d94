"""Loading a local causal LM for the transformers backend: find the model directory (local dir, .gguf file or the
embedded model), load tokenizer + weights (+ a PEFT adapter, merged), and hash the weights for the manifest.
torch, transformers and peft are imported inside the functions that need them (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tomarena.agents.embedded import EMBEDDED_ID, embedded_model_dir
from tomarena.errors import BackendError, ConfigError
from tomarena.files import sha256_files

DTYPES = ("float32", "bfloat16", "float16", "auto")
DEVICES = ("cpu", "cuda", "mps", "auto")


def quiet_transformers() -> None:
    """Silence transformers' per-load weight progress bars and a peft/transformers deprecation notice that
    say nothing to a tomarena user (tomarena shows its own progress)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def check_options(dtype: str, device: str, batch_size: int) -> None:
    """ConfigError naming the bad value unless dtype and device are known and batch_size >= 1."""
    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")


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


def resolve_adapter(adapter: str | None) -> str | None:
    """The expanded adapter directory (None for none); ConfigError when it holds no adapter_config.json."""
    if adapter in (None, ""):
        return None
    path = str(Path(adapter).expanduser())
    if not (Path(path) / "adapter_config.json").is_file():
        raise ConfigError(f"adapter path {adapter!r} is not a PEFT adapter directory (no adapter_config.json)")
    return path


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (library errors are often paragraphs)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def torch_device(device: str) -> str:
    """The torch device for a DEVICES value ('auto': CUDA when present, else CPU)."""
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: Path, common: dict[str, Any]) -> Any:
    """The tokenizer of `path`, left-padding, with a pad token; BackendError without a chat template."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, **common)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load the tokenizer from {str(path)!r}: {one_line(exc)}") from exc
    if not getattr(tok, "chat_template", None):
        raise BackendError(f"the tokenizer in {str(path)!r} has no chat template; use an instruct model")
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def merge_adapter(model: Any, adapter: str, model_name: str) -> Any:
    """`model` with the PEFT adapter folded into its weights (inference only; the files on disk stay as they are),
    so the student runs exactly as fast as the base model."""
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise BackendError(f"cannot load adapter {adapter!r} on {model_name!r}: {one_line(exc)}") from exc
    return model.merge_and_unload()


def load_model(path: Path, gguf_file: str | None, adapter: str | None, model_name: str, dtype: str, device: str,
               trust_remote_code: bool) -> tuple[Any, Any]:
    """(model in eval mode on its device, tokenizer) for a resolved model directory, with the adapter merged."""
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    if gguf_file:
        common["gguf_file"] = gguf_file
    tok = load_tokenizer(path, common)
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    kw = dict(common, dtype=torch_dtype) if gguf_file else dict(common, dtype=torch_dtype, use_safetensors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kw)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load the model from {str(path)!r}: {one_line(exc)}") from exc
    if adapter:
        model = merge_adapter(model, adapter, model_name)
    return model.to(torch_device(device)).eval(), tok


def weight_hashes(path: Path, gguf_file: str | None, adapter: str | None) -> dict[str, str | None]:
    """sha256 of the model weights (the GGUF file, or the safetensors files in name order) and of the adapter's
    safetensors (None where there are no such files)."""
    model_files = [path / gguf_file] if gguf_file else sorted(path.glob("*.safetensors"))
    adapter_files = sorted(Path(adapter).glob("*.safetensors")) if adapter else []
    return {"model_sha256": sha256_files(model_files) if model_files else None,
            "adapter_sha256": sha256_files(adapter_files) if adapter_files else None}
