"""Sub-commands of this layer (being written)."""

import argparse


def add_commands(sub: "argparse._SubParsersAction") -> None:
    """Add this layer's sub-commands to the `tomarena` parser."""
