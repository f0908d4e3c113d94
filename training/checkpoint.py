"""Resumable checkpoints under ADAPTER_DIR.partial/ and the atomic final write of the adapter + manifest.

A checkpoint holds the LoRA weights, optimizer, scheduler, torch RNG and the loop state (training/state.py
LoopState: step, metric sums, fingerprint of config/traces/base). It is written to a temporary folder and renamed into
place, so an interrupted save leaves the previous checkpoint intact. `resumable(out)` is the one test of whether an
unfinished run can be continued; callers above never build these paths themselves.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from tomarena.errors import ConfigError
from tomarena.training.state import LoopState

MANIFEST_NAME = "tomarena_finetune.json"
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.json"


def partial_dir(out: Path) -> Path:
    """Where an unfinished run keeps its checkpoints."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def resumable(out: str | Path) -> bool:
    """Whether an unfinished fine-tune into `out` left a checkpoint that `finetune(..., resume=True)` continues."""
    return (partial_dir(Path(out)) / CHECKPOINT_DIR / STATE_NAME).is_file()


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a finished adapter or silently restart an interrupted run; a partial folder without a
    checkpoint (a run stopped before its first save) holds nothing to keep and is cleared."""
    if out.exists() and not overwrite:
        raise ConfigError(f"output {out} already exists; choose another --out or pass --overwrite")
    partial = partial_dir(out)
    if resumable(out) and not resume:
        raise ConfigError(f"{partial} holds an interrupted run; pass --resume to continue it or delete it")
    if not resumable(out):
        shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output {out}: {exc.strerror or exc} ({exc.filename})") from exc


def replace_dir(tmp: Path, dest: Path) -> None:
    """Rename the finished folder `tmp` to `dest`; a previous `dest` is moved aside first and removed after, so
    `dest` is at every moment either the old or the new folder, never half of one. (A folder rename: the file
    helpers of tomarena.files write single files.)"""
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)


def save_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, state: LoopState) -> None:
    """Write a complete checkpoint of the run next to `out` (atomically replacing the previous one)."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    root = partial_dir(out)
    tmp = root / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, str(tmp / "adapter.safetensors"))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
               tmp / "trainer.pt")
    (tmp / STATE_NAME).write_text(json.dumps(state.to_json(), indent=1))
    replace_dir(tmp, root / CHECKPOINT_DIR)


def load_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any,
                    fingerprint: dict[str, Any]) -> LoopState | None:
    """Restore the last checkpoint into model/optimizer/scheduler and return the loop state (None if none);
    ConfigError when it was made with another config, traces or base model."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    ckpt = partial_dir(out) / CHECKPOINT_DIR
    if not resumable(out):
        return None
    state = LoopState.from_json(json.loads((ckpt / STATE_NAME).read_text()), f"checkpoint {ckpt}")
    for key, value in fingerprint.items():
        if state.fingerprint.get(key) != value:
            raise ConfigError(f"cannot resume {partial_dir(out)}: its {key} differs from this run's; "
                              f"use the same settings or delete it")
    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter.safetensors")))
    saved = torch.load(ckpt / "trainer.pt", weights_only=True)  # no pickled code
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["cpu"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return state


def write_final(out: Path, model: Any, manifest: dict[str, Any]) -> None:
    """Save the adapter and manifest in a temporary folder, rename it to `out`, then drop the checkpoints."""
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    replace_dir(tmp, out)  # an existing `out` is only reached with overwrite=True
    shutil.rmtree(partial_dir(out), ignore_errors=True)
