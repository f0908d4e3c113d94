"""tomarena.agents: the Policy contract and registry, classic strategies, the Axelrod adapter, the reference
strategist, and LLM policies with their backends. Heavy libraries load only when an LLM policy is built."""

from tomarena.agents.backend import Backend
from tomarena.agents.base import POLICIES, Decision, Policy, PolicyInfo, register_policy, sample_action
from tomarena.agents.resolve import resolve_policy

__all__ = ["POLICIES", "Backend", "Decision", "Policy", "PolicyInfo", "register_policy", "resolve_policy", "sample_action"]
