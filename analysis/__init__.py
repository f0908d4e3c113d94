"""tomarena.analysis."""
