"""Import rules, checked statically (AST) over every module of the package, so the dependency graph stays visible:

1. layers: a module imports only its own layer or the ones below it (base < envs < agents < arena < training,
   analysis < the top floor app/: the CLI and its sub-commands, pipeline, API, catalog); training and analysis
   are siblings and do not import each other;
   rooms: a floor's subpackage is a room (agents/llm/, agents/strategies/); a floor's root modules (the agents
   contract and registry) import none of its rooms, and a room imports the root, lower floors and, of another room,
   only the modules ROOM_DOORS names (strategies use llm's prompts, for the prompt a teacher decision records; llm
   uses nothing of strategies);
2. no module imports a private name (`_x`) of another module;
3. an import inside a function is a deferred heavy library (tomarena.DEFERRED_IMPORTS) or a project module that,
   at its top level and transitively, imports one; everything else belongs at the top of the module.

Every module is checked, subpackages (app/commands/, agents/llm/, agents/strategies/) included. Each checker is a
plain function over source text, and is shown to fail on a broken snippet.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tomarena import DEFERRED_IMPORTS

ROOT = Path(__file__).resolve().parents[1]
#: import name of each package -> its folder (pyproject's package-dir)
PACKAGES = {"tomarena": "tomarena", "tomarena.envs": "envs", "tomarena.agents": "agents", "tomarena.arena": "arena",
            "tomarena.training": "training", "tomarena.analysis": "analysis", "tomarena.app": "app"}
#: the ground floor: errors, registry, data and file helpers every layer may use (tomarena.options: the option
#: machinery every layer's configs are built with)
BASE = frozenset({"tomarena", "tomarena.errors", "tomarena.registry", "tomarena.schema", "tomarena.files",
                  "tomarena.outputs", "tomarena.study", "tomarena.options"})
#: the top floor: the command line, the pipeline, the API and the catalog (app/, every module of tomarena.app)
TOP_PACKAGE = "tomarena.app"
RANKS = {"base": 0, "envs": 1, "agents": 2, "arena": 3, "training": 4, "analysis": 4, "top": 5}
#: the one upward edge on purpose: the package root loads its API on first attribute access (PEP 562), so
#: `import tomarena` (run by every submodule import) stays light
FACADES = frozenset({("tomarena", "tomarena.app.api")})
#: the rooms of a floor (subpackages with a rule of their own) -> what each may import of the floor's other rooms:
#: a whole room or single modules; a floor's root modules import no room (resolve.py loads them by name)
ROOM_DOORS: dict[str, tuple[str, ...]] = {
    "tomarena.agents.llm": (),
    "tomarena.agents.strategies": ("tomarena.agents.llm.prompts",),
}


@dataclass(frozen=True)
class Import:
    """One imported target of one import statement."""

    importer: str
    target: str  # a module (project or library) or, for `from M import name` of a non-module name, M
    name: str | None  # the non-module name taken from `target`, if any
    line: int
    in_function: bool
    type_checking: bool


def project_modules(root: Path = ROOT) -> dict[str, str]:
    """Every module of the package, subpackages included -> its source text."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            name = ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            out[name] = path.read_text(encoding="utf-8")
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False,
          type_checking: bool = False) -> Iterable[tuple[ast.AST, bool, bool]]:
    """Every import node with whether it sits inside a function and under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function, type_checking
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        guarded = type_checking or (isinstance(child, ast.If) and _is_type_checking(child))
        yield from _walk(child, inner, guarded)


def _base_of(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def read_imports(importer: str, source: str, modules: Iterable[str], is_package: bool = False) -> list[Import]:
    """The imports of one module's source; `from M import x` targets the module M.x when it is one of `modules`."""
    known = set(modules)
    out = []
    for node, in_function, type_checking in _walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [Import(importer, a.name, None, node.lineno, in_function, type_checking) for a in node.names]
            continue
        base = _base_of(importer, node, is_package)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            target, name = (sub, None) if sub in known else (base, alias.name)
            out.append(Import(importer, target, name, node.lineno, in_function, type_checking))
    return out


def layer_of(module: str) -> str:
    """The layer of a project module ('base', 'envs', ..., 'top'); KeyError for a module of no layer."""
    if module == TOP_PACKAGE or module.startswith(TOP_PACKAGE + "."):
        return "top"
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in RANKS and f"tomarena.{parts[1]}" in PACKAGES:
        return parts[1]
    raise KeyError(f"{module} has no layer: add it to BASE or put it under app/")


def _project(target: str) -> bool:
    return target == "tomarena" or target.startswith("tomarena.")


def room_of(module: str) -> str | None:
    """The room (ROOM_DOORS) a project module lives in, or None for a floor's root modules."""
    return next((room for room in ROOM_DOORS if module == room or module.startswith(room + ".")), None)


def room_violations(imports: Iterable[Import]) -> dict[str, str]:
    """{"room: importer -> target": where and why} for every import, within one floor, of a room by the floor's root
    or of another room's module that ROOM_DOORS does not open."""
    out = {}
    for imp in imports:
        if not _project(imp.target) or layer_of(imp.importer) != layer_of(imp.target):
            continue
        mine, theirs = room_of(imp.importer), room_of(imp.target)
        if theirs is None or theirs == mine:
            continue
        if mine is None:
            why = f"the root of a floor imports none of its rooms ({theirs})"
        elif any(imp.target == door or imp.target.startswith(door + ".") for door in ROOM_DOORS[mine]):
            continue
        else:
            why = f"{mine} may import of {theirs} only {', '.join(ROOM_DOORS[mine]) or 'nothing'}"
        out[f"room: {imp.importer} -> {imp.target}"] = f"{imp.importer}:{imp.line} imports {imp.target} ({why})"
    return out


def layering_violations(imports: Iterable[Import]) -> dict[str, str]:
    """{"layer: importer -> target": where and why} for every import of a higher (or sibling) layer."""
    out = {}
    for imp in imports:
        if not _project(imp.target) or (imp.importer, imp.target) in FACADES:
            continue
        mine, theirs = layer_of(imp.importer), layer_of(imp.target)
        if RANKS[theirs] > RANKS[mine] or (RANKS[theirs] == RANKS[mine] and theirs != mine):
            out[f"layer: {imp.importer} -> {imp.target}"] = (f"{imp.importer}:{imp.line} imports {imp.target} "
                                                             f"({theirs} is not below {mine})")
    return out


def private_name_violations(imports: Iterable[Import]) -> dict[str, str]:
    """{"private: importer -> target.name": where} for every private name (or private module) of another module."""
    out = {}
    for imp in imports:
        if not _project(imp.target) or imp.target == imp.importer:
            continue
        last = imp.name if imp.name is not None else imp.target.rsplit(".", 1)[-1]
        if last.startswith("_") and not (last.startswith("__") and last.endswith("__")):
            shown = f"{imp.target}.{imp.name}" if imp.name else imp.target
            out[f"private: {imp.importer} -> {shown}"] = f"{imp.importer}:{imp.line} imports private {shown}"
    return out


def heavy_at_top(imports: Mapping[str, list[Import]], deferred: Iterable[str]) -> set[str]:
    """The project modules whose import (their top level, transitively, parent packages included) loads a deferred
    library."""
    roots = set(deferred)
    edges: dict[str, set[str]] = {}
    for module, imps in imports.items():
        parents = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)}
        edges[module] = parents | {i.target for i in imps if not i.in_function and not i.type_checking}
    heavy = {m for m, targets in edges.items() if any(t.split(".")[0] in roots for t in targets)}
    changed = True
    while changed:
        grown = {m for m, targets in edges.items() if m not in heavy and targets & heavy}
        heavy |= grown
        changed = bool(grown)
    return heavy


def deferred_violations(imports: Mapping[str, list[Import]], deferred: Iterable[str]) -> dict[str, str]:
    """{"function-level: importer -> target": where} for every import inside a function that is neither a deferred
    library nor a project module that loads one at its top level."""
    deferred = tuple(deferred)
    heavy = heavy_at_top(imports, deferred)
    out = {}
    for module, imps in imports.items():
        for imp in imps:
            if not imp.in_function or (imp.importer, imp.target) in FACADES:
                continue
            if imp.target.split(".")[0] in deferred or imp.target in heavy:
                continue
            out[f"function-level: {module} -> {imp.target}"] = (
                f"{module}:{imp.line} imports {imp.target} inside a function; move it to the top (it is not in "
                f"tomarena.DEFERRED_IMPORTS and loads none of them)")
    return out


def all_imports(sources: Mapping[str, str]) -> dict[str, list[Import]]:
    """read_imports for every module of `sources` (a module is a package when another module lies under it)."""
    packages = set(PACKAGES) | {m for m in sources if any(other.startswith(m + ".") for other in sources)}
    return {m: read_imports(m, src, sources, is_package=m in packages) for m, src in sources.items()}


@pytest.fixture(scope="module")
def imports() -> dict[str, list[Import]]:
    return all_imports(project_modules())


def _check(found: dict[str, str], rule: str) -> None:
    assert not found, f"{rule} rule broken:\n" + "\n".join(sorted(found.values()))


def test_every_module_has_a_layer(imports: dict[str, list[Import]]) -> None:
    for module in imports:
        layer_of(module)
    assert layer_of("tomarena.app.commands.arena") == "top" and layer_of("tomarena.agents.llm.prefix") == "agents"


def test_no_module_imports_a_higher_layer(imports: dict[str, list[Import]]) -> None:
    _check(layering_violations(i for imps in imports.values() for i in imps), "layer")


def test_rooms_import_only_what_their_doors_open(imports: dict[str, list[Import]]) -> None:
    _check(room_violations(i for imps in imports.values() for i in imps), "room")


def test_every_folder_of_the_package_is_checked(imports: dict[str, list[Import]]) -> None:
    """Subpackages are read too: the CLI's sub-commands and both agents rooms."""
    for module in ("tomarena.app.commands", "tomarena.app.commands.arena", "tomarena.agents.llm",
                   "tomarena.agents.llm.hf_load", "tomarena.agents.strategies", "tomarena.agents.strategies.classic"):
        assert module in imports, module


def test_no_module_imports_a_private_name_of_another(imports: dict[str, list[Import]]) -> None:
    _check(private_name_violations(i for imps in imports.values() for i in imps), "private")


def test_function_level_imports_are_deferred_heavy_libraries(imports: dict[str, list[Import]]) -> None:
    _check(deferred_violations(imports, DEFERRED_IMPORTS), "function-level")


def test_deferred_imports_name_libraries_the_package_defers(imports: dict[str, list[Import]]) -> None:
    """Every library in DEFERRED_IMPORTS is imported inside some function (the list stays honest)."""
    deferred_somewhere = {i.target.split(".")[0] for imps in imports.values() for i in imps if i.in_function}
    assert set(DEFERRED_IMPORTS) <= deferred_somewhere, set(DEFERRED_IMPORTS) - deferred_somewhere


# -- each checker fails on a broken snippet ------------------------------------------------------------------------
def _imports(sources: dict[str, str]) -> dict[str, list[Import]]:
    return all_imports(sources)


def test_layering_checker_catches_an_upward_import() -> None:
    found = _imports({"tomarena.envs.games": "from tomarena.agents.base import Policy\n",
                      "tomarena.agents.base": "from tomarena.envs.games import Game\n",
                      "tomarena.training.data": "from tomarena.analysis import load\n",
                      "tomarena.analysis.load": ""})
    assert set(layering_violations(i for imps in found.values() for i in imps)) == {
        "layer: tomarena.envs.games -> tomarena.agents.base", "layer: tomarena.training.data -> tomarena.analysis.load"}
    assert layering_violations(read_imports("tomarena.app.cli", "import tomarena.arena.runner\n", ())) == {}


def test_room_checker_catches_a_door_that_is_not_open() -> None:
    found = _imports({
        "tomarena.agents.base": "from tomarena.agents.llm.backend import Backend\n",
        "tomarena.agents.llm.backend": "from tomarena.agents.strategies import classic\n",
        "tomarena.agents.llm.prompts": "from tomarena.agents.base import Policy\n",
        "tomarena.agents.strategies.classic": "from tomarena.agents.llm.hf_load import load_model\n",
        "tomarena.agents.strategies.strategist": ("from tomarena.agents.llm.prompts import build_messages\n"
                                                  "from tomarena.agents.strategies.classic import CLASSIC\n"
                                                  "from tomarena.envs.games import Game\n"),
        "tomarena.agents.llm.hf_load": "", "tomarena.envs.games": "",
    })
    assert set(room_violations(i for imps in found.values() for i in imps)) == {
        "room: tomarena.agents.base -> tomarena.agents.llm.backend",
        "room: tomarena.agents.llm.backend -> tomarena.agents.strategies.classic",
        "room: tomarena.agents.strategies.classic -> tomarena.agents.llm.hf_load"}


def test_private_name_checker_catches_a_private_import() -> None:
    src = "from tomarena.agents.llm.hf_backend import _one_line, HFBackend\nfrom tomarena import __version__\n"
    found = private_name_violations(read_imports("tomarena.training.model", src, ("tomarena.agents.llm.hf_backend",)))
    assert set(found) == {"private: tomarena.training.model -> tomarena.agents.llm.hf_backend._one_line"}


def test_deferred_checker_catches_a_needless_function_level_import() -> None:
    sources = {
        "tomarena.agents.light": "import json\n",
        "tomarena.agents.heavy": "import torch\n",
        "tomarena.agents.uses": ("def f():\n    import torch\n    from tomarena.agents import heavy, light\n"
                                 "    import json\n"),
    }
    found = deferred_violations(_imports(sources), ("torch",))
    assert set(found) == {"function-level: tomarena.agents.uses -> tomarena.agents.light",
                          "function-level: tomarena.agents.uses -> json"}


def test_type_checking_imports_are_not_top_level_loads() -> None:
    sources = {"tomarena.agents.a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n",
               "tomarena.agents.b": "def f():\n    from tomarena.agents import a\n"}
    assert set(deferred_violations(_imports(sources), ("torch",))) == {"function-level: tomarena.agents.b -> "
                                                                       "tomarena.agents.a"}
