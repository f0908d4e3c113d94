"""tomarena.agents.llm: the LLM side. The policy (llm_policy.py) and its shared decoding options (llm_options.py);
the words a model sees and how its answer is read (prompts.py, parsing.py, sampling.py); the Backend contract
(backend.py) and its backends: local HF models (hf_backend.py, split into hf_load / hf_cache / hf_score /
hf_generate, with prefix.py's shared-prefix planning), OpenAI-compatible endpoints (http_backend.py) and the
simulated accelerator for benchmarks (sim_backend.py); the embedded SmolLM2 model (embedded.py). It imports nothing
of agents/strategies/; torch and transformers load inside the functions that need them."""

from tomarena.agents.llm.backend import Backend

__all__ = ["Backend"]
