"""tomarena: repeated social dilemmas as PettingZoo environments, LLM and classic agents,
Ray-parallel tournaments, LoRA distillation from gameplay, and behavioural analysis.

Python API (see tomarena.app.api): `tomarena.tournament(...)`, `tomarena.sweep(...)` -> Result (run directory and
pandas tables), `tomarena.report(...)` -> Report. They load on first use, so `import tomarena` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["DEFERRED_IMPORTS", "Result", "__version__", "report", "sweep", "tournament"]

#: Libraries imported inside the functions that use them, on purpose: each costs from ~0.04 s (tqdm) to seconds
#: (torch, peft, axelrod) to import, and `tomarena --help`, the envs and the analysis must start without them.
#: Every other import sits at the top of its module (tests/test_imports.py checks both rules).
DEFERRED_IMPORTS = ("torch", "transformers", "peft", "safetensors", "ray", "axelrod", "nashpy", "scipy", "pandas",
                    "pyarrow", "matplotlib", "tqdm")

_API = ("Result", "report", "sweep", "tournament")


def __getattr__(name: str) -> Any:
    """Load the API (tomarena.app.api) on first access of one of its names."""
    if name in _API:
        from tomarena.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'tomarena' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
