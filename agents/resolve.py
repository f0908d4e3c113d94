"""Turn a policy spec into a Policy. Specs are accepted everywhere a policy is (CLI flags and configs):

- a registry id, optionally with options: `classic/tit_for_tat`, `classic/random?p=0.3`
- `axelrod:<strategy name>`: any strategy of the Axelrod library, e.g. `axelrod:Grudger`
- `hf:<path-or-model-id>?adapter=...&mode=score|generate&protocol=letter|motivation&temperature=0.8`
- `openai:<base-url>?model=<name>&...`: an OpenAI-compatible chat-completions endpoint
- `sim:flat?latency_ms=50&max_batch=64&p=0.7`: a simulated accelerator (benchmark device only,
  agents/llm/sim_backend.py)

A spec's options are validated by the policy's options model (agents/policy_options.py), declared by the policy or
derived from its factory's signature.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl

from tomarena.agents.base import POLICIES, Policy, PolicyInfo
from tomarena.agents.policy_options import options_model, parse_options
from tomarena.errors import ConfigError, RegistryError, TomarenaError

BUILTIN_MODULES = ("tomarena.agents.strategies.classic", "tomarena.agents.strategies.axelrod_adapter",
                   "tomarena.agents.strategies.strategist", "tomarena.agents.llm.llm_policy",
                   "tomarena.agents.strategies.study")  # each registers its policies on import
ENTRY_POINT_GROUP = "tomarena.policies"
PREFIXES = {  # prefix -> (module, factory) taking the rest of the spec as first argument
    "hf": ("tomarena.agents.llm.llm_policy", "from_hf_spec"),
    "openai": ("tomarena.agents.llm.llm_policy", "from_openai_spec"),
    "axelrod": ("tomarena.agents.strategies.axelrod_adapter", "axelrod_policy"),
    "sim": ("tomarena.agents.llm.sim_backend", "from_sim_spec"),  # simulated accelerator: benchmarks only
}
NO_NAME = object()  # build_with_options: the factory takes no name before its options


def _load_policies() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin must not take the registry down
            raise RegistryError(f"policy plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if callable(target) and not isinstance(target, type):
            target()  # a plugin's register() function
        if not POLICIES.registered(ep.name) and isinstance(target, type) and issubclass(target, Policy):
            POLICIES.register(ep.name, PolicyInfo(ep.name, target, (target.__doc__ or "").strip().split("\n")[0],
                                                  "plugin"))


POLICIES.set_loader(_load_policies)


def build_with_options(factory: Callable[..., Policy], options: Mapping[str, str], what: str,
                       first: Any = NO_NAME) -> Policy:
    """Call `factory` with a spec's option strings validated by its options model (`options_model`: declared, or
    derived from its signature); `first` is the name a spec family passes first. Bad options are one line."""
    model = options_model(factory, skip_first=first is not NO_NAME)
    values = parse_options(model, options, what).model_dump(exclude_unset=True)
    args = () if first is NO_NAME else (first,)
    return factory(*args, **values)


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split `name?k=v&k=v` into the name and its options."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a policy spec must be a non-empty string, got {spec!r}")
    name, _, query = spec.strip().partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"malformed options {query!r} in policy spec {spec!r}; use key=value&key=value") from exc
    options = dict(pairs)
    if len(options) != len(pairs):
        raise ConfigError(f"an option is repeated in policy spec {spec!r}")
    return name, options


def resolve_policy(spec: str | Policy) -> Policy:
    """Build the Policy named by `spec` (see the module docstring); a Policy passes through."""
    if isinstance(spec, Policy):
        return spec
    name, options = split_spec(spec)
    prefix, sep, rest = name.partition(":")
    try:
        if sep and prefix in PREFIXES and "/" not in prefix:
            module, fn = PREFIXES[prefix]
            if not rest:
                raise ConfigError(f"policy spec {spec!r} needs something after '{prefix}:'")
            factory = getattr(importlib.import_module(module), fn)
            policy = build_with_options(factory, options, f"{prefix}: policies", first=rest)
        else:
            info = POLICIES.get(name)
            policy = build_with_options(info.factory, options, f"policy {name!r}")
    except TomarenaError:
        raise
    except ValueError as exc:  # a factory's (a plugin's) own refusal of its options: one line naming the spec
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise ConfigError(f"policy {spec.strip()!r} cannot be built: {lines[0] if lines else type(exc).__name__}"
                          ) from exc
    policy.id = spec.strip()
    return policy
