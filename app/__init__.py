"""The top floor: what users call. The `tomarena` command line (cli.py and its sub-commands in commands/), the
end-to-end pipeline, the Python API and the catalog of registered ids. Everything here may import every layer
below (envs, agents, arena, training, analysis and the base in tomarena/); nothing below imports it."""
