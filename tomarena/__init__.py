"""tomarena: repeated social dilemmas as PettingZoo environments, LLM and classic agents,
Ray-parallel tournaments, LoRA distillation from gameplay, and behavioural analysis."""

__version__ = "0.1.0"
