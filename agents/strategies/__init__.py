"""tomarena.agents.strategies: the rule-based policies. Classic strategies with declared classifiers and their
vectorised core (classic.py), any strategy of the Axelrod library (axelrod_adapter.py, names checked against
axelrod_strategies.json), the reference strategist that writes the teacher's motivation (strategist.py), and the
study's replay policies (study.py) with the fitted repeated-play model (study_fit.py). Of agents/llm/ it uses only
prompts.py, for the prompt a teacher decision records."""
