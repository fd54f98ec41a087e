"""Expected failures as one sentence and an exit code, for the CLI's top-level handler.

Exit code 2: bad input (a file, a config key, a run directory, a task name: the user's to fix).
Exit code 1: a runtime fault (a non-finite loss, a full or read-only disk, a failed fetch).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno

BAD_INPUT = 2
RUNTIME = 1

# OSErrors that say what is wrong with a path the user gave (the rest are faults of the system)
_PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
_RUNTIME_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO}


def describe(exc: BaseException) -> tuple[int, str] | None:
    """``(exit code, one-line message)`` for an expected failure, ``None`` for anything else."""
    from rnnkit.data.fetching import FetchError, LocalFileError
    from rnnkit.models.contract import ModelContractError
    from rnnkit.training.trainer import NonFiniteLossError

    if isinstance(exc, LocalFileError):  # a bad --from FILE is the user's to fix
        return BAD_INPUT, _text(exc)
    if isinstance(exc, NonFiniteLossError | FetchError):
        return RUNTIME, _text(exc)
    if isinstance(exc, UnicodeDecodeError):
        where = f"byte {exc.start}: {exc.reason}"
        return BAD_INPUT, f"not UTF-8 text ({where}); give a UTF-8 text file"
    # ConfigError, DataFormatError, CheckpointError (a corrupt or mismatched checkpoint)
    if isinstance(exc, ValueError | ModelContractError):
        return BAD_INPUT, _text(exc)
    if isinstance(exc, KeyError):  # an unknown task or dataset
        return BAD_INPUT, str(exc.args[0]) if exc.args else "unknown key"
    if isinstance(exc, OSError):
        code = BAD_INPUT if isinstance(exc, _PATH_ERRORS) else RUNTIME
        if exc.errno in _RUNTIME_ERRNOS:
            code = RUNTIME
        return code, os_error_text(exc)
    return None


def os_error_text(exc: OSError) -> str:
    """``PATH: reason`` (``PATH -> OTHER: reason`` for a rename) without ``[Errno N]``."""
    reason = exc.strerror or _text(exc)
    if exc.filename is None:
        return reason
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return f"{where}: {reason}"


def _text(exc: BaseException) -> str:
    """The exception's message on one line (or its type when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
