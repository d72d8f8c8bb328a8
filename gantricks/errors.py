"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class GantricksError(Exception):
    """Base class for every error caused by the user's input (config, data, checkpoint)."""


class ConfigError(GantricksError, ValueError):
    """A name, value or combination of options that cannot work."""


class CheckpointError(GantricksError):
    """A checkpoint that is missing, truncated or not ours."""


class NonFiniteError(GantricksError, FloatingPointError):
    """A loss or gradient became NaN or inf; ``step`` is the step at which it appeared."""

    def __init__(self, step: int, what: str, note: str = ""):
        super().__init__(f"non-finite {what} at step {step}{note}")
        self.step = step
        self.what = what
