"""tomarena.training."""
