"""One small error hierarchy: every error a user can cause is a TomarenaError with a one-line message."""


class TomarenaError(Exception):
    """Base of every error tomarena raises on bad input; the CLI prints it as one line, exit 2."""


class ConfigError(TomarenaError, ValueError):
    """A configuration value, flag or file is malformed or out of range."""


class RegistryError(TomarenaError, KeyError):
    """An id is unknown or registered twice."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it plain
        return str(self.args[0]) if self.args else ""


class GameError(TomarenaError, ValueError):
    """A payoff table or game parameter is invalid."""


class BackendError(TomarenaError, RuntimeError):
    """A model backend failed to load or answer."""


class TraceError(TomarenaError, ValueError):
    """A trace file or run directory is missing, empty or malformed."""


class PolicyError(TomarenaError, ValueError):
    """A policy broke its contract: a malformed Decision (unknown source, action or probabilities)."""
