"""tomarena.agents: the Policy contract (base.py), policy options (policy_options.py) and the registry that turns a
spec into a Policy (resolve.py). Two rooms hold the policies themselves:

- agents/llm/ (tomarena.agents.llm): LLM policies, their prompts, answer parsing and backends (HF, OpenAI, sim);
- agents/strategies/ (tomarena.agents.strategies): classic strategies, the Axelrod adapter, the reference
  strategist and the study's replay policies.

The root imports neither room (resolve.py loads them by name), so heavy libraries load only when an LLM policy is
built."""

from tomarena.agents.base import POLICIES, Decision, Policy, PolicyInfo, register_policy, sample_action
from tomarena.agents.resolve import resolve_policy

__all__ = ["POLICIES", "Decision", "Policy", "PolicyInfo", "register_policy", "resolve_policy", "sample_action"]
