"""The one home for loading a local causal LM, used by inference (agents/llm/hf_backend.py) and by fine-tuning
(training/model.py): resolve a model (local dir, .gguf file or the embedded model) to its files, load its tokenizer,
config and weights, pick the device and dtype, and hash the weights, so every manifest names a model the same way.
torch, transformers and peft are imported inside the functions that need them (tomarena.DEFERRED_IMPORTS)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from tomarena.agents.llm.embedded import EMBEDDED_ID, embedded_model_dir
from tomarena.errors import BackendError, ConfigError
from tomarena.files import sha256_files

DTYPES = ("float32", "bfloat16", "float16", "auto")
DEVICES = ("cpu", "cuda", "mps", "auto")
MODEL_HINT = f"give a directory with config + safetensors, a .gguf file, or {EMBEDDED_ID}"


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
    """The local directory (and GGUF file name) for a model path or the embedded model's id; ConfigError when the
    path is missing, holds no config.json (safetensors models) or lacks the named GGUF file."""
    if model == EMBEDDED_ID:
        return embedded_model_dir(), None  # converts the shipped GGUF once (~30 s), then a cache hit
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and gguf_file is None:
        path, gguf_file = path.parent, path.name
    if not path.is_dir():
        why = "not found" if not path.exists() else "a file that is not a .gguf"
        raise ConfigError(f"model path {model!r} is not a local directory ({why}); {MODEL_HINT}")
    if gguf_file is not None and not (path / gguf_file).is_file():
        raise ConfigError(f"GGUF file {gguf_file!r} not found in {str(path)!r}")
    if gguf_file is None and not (path / "config.json").is_file():
        raise ConfigError(f"model path {model!r} holds no config.json; {MODEL_HINT}")
    return path, gguf_file


def resolve_adapter(adapter: str | None) -> str | None:
    """The expanded adapter directory (None for none); a ConfigError says whether the path does not exist, is not
    a directory, or is a directory without adapter_config.json."""
    if adapter in (None, ""):
        return None
    path = Path(adapter).expanduser()
    if not path.exists():
        raise ConfigError(f"adapter path {adapter!r} does not exist; give the directory `tomarena finetune` wrote "
                          "(it holds adapter_config.json)")
    if not path.is_dir():
        raise ConfigError(f"adapter path {adapter!r} is a file, not a PEFT adapter directory (one holding "
                          "adapter_config.json)")
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(f"adapter directory {adapter!r} holds no adapter_config.json, so it is not a PEFT "
                          "adapter; give the directory `tomarena finetune` wrote")
    return str(path)


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (library errors are often paragraphs)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


# -- identity ----------------------------------------------------------------------------------------------------
def weight_files(path: Path, gguf_file: str | None = None) -> list[Path]:
    """The files the weights are loaded from: the GGUF file, else the directory's safetensors in name order."""
    return [Path(path) / gguf_file] if gguf_file else sorted(Path(path).glob("*.safetensors"))


def model_sha256(path: Path, gguf_file: str | None = None) -> str | None:
    """The model's identity in every manifest (run and fine-tune): sha256 over the bytes of its weight files in
    name order (for one file, what `sha256sum` prints); None where there are none."""
    files = weight_files(path, gguf_file)
    return sha256_files(files) if files else None


def weight_hashes(path: Path, gguf_file: str | None, adapter: str | None) -> dict[str, str | None]:
    """model_sha256 of the model and the sha256 of the adapter's safetensors (None where there are no such files)."""
    adapter_files = sorted(Path(adapter).glob("*.safetensors")) if adapter else []
    return {"model_sha256": model_sha256(path, gguf_file),
            "adapter_sha256": sha256_files(adapter_files) if adapter_files else None}


# -- device and dtype -------------------------------------------------------------------------------------------
def torch_device(device: str) -> str:
    """The torch device for a DEVICES value ('auto': CUDA when present, else CPU); ConfigError when the asked-for
    accelerator is absent."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    present = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not present.get(device, False):
        allowed = ", ".join(d for d in DEVICES if d == "auto" or present.get(d))
        raise ConfigError(f"device {device!r} was asked for but torch sees no such device; allowed here: {allowed}")
    return device


def torch_dtype(dtype: str, device: str) -> Any:
    """The torch dtype for a DTYPES value on a resolved device ('auto': bfloat16 on a CUDA GPU that has it, else
    float32, the fast choice on CPUs)."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


# -- loading ----------------------------------------------------------------------------------------------------
def load_kwargs(gguf_file: str | None, trust_remote_code: bool = False) -> dict[str, Any]:
    """from_pretrained arguments shared by tokenizer, config and model: local files only, the GGUF file if any."""
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    return {**common, "gguf_file": gguf_file} if gguf_file else common


def load_tokenizer(path: Path, gguf_file: str | None = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a resolved model, left-padding, with a pad token; BackendError without a chat template."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, **load_kwargs(gguf_file, trust_remote_code))
    except (OSError, ValueError, TypeError) as exc:
        raise BackendError(f"cannot load the tokenizer from {str(path)!r}: {one_line(exc)}") from exc
    if not getattr(tok, "chat_template", None):
        raise BackendError(f"the tokenizer in {str(path)!r} has no chat template; use an instruct model or add a "
                           f"chat_template to its tokenizer_config.json")
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model_config(path: Path, gguf_file: str | None = None, trust_remote_code: bool = False) -> Any:
    """The transformers config of a resolved model (cheap: no weights); BackendError when unreadable."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, **load_kwargs(gguf_file, trust_remote_code))
    except (OSError, ValueError, KeyError) as exc:
        raise BackendError(f"cannot read the config of {str(path)!r}: {one_line(exc)}") from exc


def load_causal_lm(path: Path, gguf_file: str | None, dtype: Any, trust_remote_code: bool = False) -> Any:
    """The weights of a resolved model as a causal LM in `dtype` (a torch dtype), on the CPU; BackendError when
    they cannot be loaded (safetensors only: pickled .bin weights are refused)."""
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    kw = load_kwargs(gguf_file, trust_remote_code)
    kw = {**kw, "dtype": dtype} if gguf_file else {**kw, "dtype": dtype, "use_safetensors": True}
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kw)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load the model from {str(path)!r}: {one_line(exc)}") from exc


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
    """(model in eval mode on its device, tokenizer) for inference on a resolved model, with the adapter merged."""
    tok = load_tokenizer(path, gguf_file, trust_remote_code)
    where = torch_device(device)
    model = load_causal_lm(path, gguf_file, torch_dtype(dtype, where), trust_remote_code)
    if adapter:
        model = merge_adapter(model, adapter, model_name)
    return model.to(where).eval(), tok
