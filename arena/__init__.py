"""tomarena.arena."""
