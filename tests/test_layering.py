"""Layering: envs and the CLI's --help start without torch, transformers or ray (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "ray", "peft", "trl")
PROBE = (
    "import json, sys\n{body}\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})))\n"
)


def _heavy_after(body: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body, heavy=set(HEAVY))],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("body", [
    "import tomarena.envs",
    "import tomarena.envs as e; e.parallel_env(game='donation').reset(seed=0); e.env(game='stag_hunt').reset()",
    ("import contextlib, io\nfrom tomarena.app.cli import main\n"
     "with contextlib.redirect_stdout(io.StringIO()):\n"
     "    try:\n        main(['--help'])\n    except SystemExit:\n        pass"),
    ("import contextlib, io\nfrom tomarena.app.cli import main\n"
     "with contextlib.redirect_stdout(io.StringIO()):\n    main(['list', 'games']); main(['list', 'framings'])"),
])
def test_no_heavy_imports(body: str) -> None:
    assert _heavy_after(body) == []


def test_probe_detects_a_heavy_import() -> None:
    # the checker itself must fail when a heavy module is imported (a cheap stand-in: a fake 'ray' module)
    assert _heavy_after("import sys, types; sys.modules['ray'] = types.ModuleType('ray')") == ["ray"]


def test_envs_source_has_no_heavy_import_statements() -> None:
    from pathlib import Path

    import tomarena.envs

    root = Path(tomarena.envs.__file__).parent
    for path in root.glob("*.py"):
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in HEAVY, f"{path.name}: {line.strip()}"
