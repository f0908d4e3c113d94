"""A third-party package registering policies through the `tomarena.policies` entry point is listed and plays."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"

PLAY = """
import numpy as np
from tomarena.agents import resolve_policy
from tomarena.envs import parallel_env

pols = [resolve_policy("plugin/contrarian"), resolve_policy("plugin/stubborn?p=0")]
env = parallel_env(game="prisoners_dilemma", framing="business", rounds=5)
_, infos = env.reset(seed=0)
rngs, moves = [np.random.default_rng(1), np.random.default_rng(2)], []
while env.agents:
    acts = {a: pols[i].act(infos[a]["observation"], None, rngs[i])[0].action for i, a in enumerate(env.agents)}
    _, rewards, _, _, infos = env.step(acts)
    moves.append("CD"[acts["player_0"]] + "CD"[acts["player_1"]])
print(" ".join(moves))
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed with pip into its own folder (from a copy, so the repo stays clean)."""
    root = tmp_path_factory.mktemp("plugin")
    src, target = root / "src", root / "site"
    shutil.copytree(PLUGIN_DIR, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "-q", "--target", str(target), str(src)],
                   check=True, capture_output=True, timeout=300)
    return target


def run(args: list[str], plugin: Path | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if plugin is not None:
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(plugin), env.get("PYTHONPATH", "")) if x)
    return subprocess.run([sys.executable, *args], check=False, env=env, capture_output=True, text=True, timeout=300)


def test_plugin_policies_are_listed(plugin_path):
    out = run(["-m", "tomarena.app.cli", "list", "policies"], plugin_path)
    assert out.returncode == 0, out.stderr
    # policy rows start at column 0; wrapped descriptions and option lines are indented
    rows = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines() if line[:1].strip()}
    assert rows["plugin/contrarian"] == "plugin" and rows["plugin/stubborn"] == "plugin"
    assert rows["classic/tit_for_tat"] == "classic"


def test_plugin_policies_play_a_match(plugin_path):
    out = run(["-c", PLAY], plugin_path)
    assert out.returncode == 0, out.stderr
    # contrarian: C, then the opposite of stubborn's D -> C every round; stubborn (p=0): D for ever
    assert out.stdout.split() == ["CD"] * 5


def test_without_the_plugin_the_ids_are_unknown():
    out = run(["-c", "from tomarena.agents import resolve_policy; resolve_policy('plugin/contrarian')"], None)
    assert out.returncode != 0 and "unknown policy 'plugin/contrarian'" in out.stderr
