"""Errors a user can act on. The CLI prints them as one line and exits with the error's ``exit_code``.

Exit codes (``gantricks`` commands): 2 bad input (a flag, a config, a data file, a checkpoint, a model);
3 a run stopped by a non-finite loss or gradient; 128 + N a run stopped by signal N (130 Ctrl-C,
143 SIGTERM) after writing a checkpoint.
"""


class GantricksError(Exception):
    """Base class for every error caused by the user's input (config, data, checkpoint)."""

    exit_code = 2


class ConfigError(GantricksError, ValueError):
    """A name, value or combination of options that cannot work."""


class CheckpointError(GantricksError):
    """A checkpoint that is missing, truncated or not ours."""


class RunFolderBusy(GantricksError):
    """Another live process holds the run folder's lock."""


class NonFiniteError(GantricksError, FloatingPointError):
    """A loss or gradient became NaN or inf; ``step`` is the step at which it appeared."""

    exit_code = 3     # not bad input: the run itself went wrong, so a script can tell them apart

    def __init__(self, step: int, what: str, note: str = ""):
        super().__init__(f"non-finite {what} at step {step}{note}")
        self.step = step
        self.what = what
        self.note = note

    def __reduce__(self):     # comes back whole from a bench's worker process
        return type(self), (self.step, self.what, self.note)


class Stopped(GantricksError):
    """The run was asked to stop (SIGTERM, SIGINT) and wrote a checkpoint first; exit status 128 + signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def __reduce__(self):     # comes back whole from a bench's worker process
        return type(self), (self.signum, str(self))
