"""Side-by-side benchmarks of tomarena against the baselines a user would otherwise reach for (not tests)."""
