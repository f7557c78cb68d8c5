"""Errors a user causes (bad config, missing data). The CLI prints them without a traceback."""


class SeglabError(Exception):
    """A problem the user can fix; its message says what was wrong and what was expected."""


class ConfigError(SeglabError):
    """A config value is invalid or inconsistent with another one."""


class DatasetNotFoundError(SeglabError):
    """A dataset root is missing or not laid out as the publisher ships it."""


class BadSampleError(SeglabError):
    """A data file cannot be used (unreadable, wrong size, label out of range)."""


class TrackingStoreError(SeglabError):
    """The MLflow tracking store cannot be reached or written."""


class TrainingDivergedError(SeglabError):
    """The training loss became NaN or infinite."""


class ResumeError(SeglabError):
    """`resume=<dir>` does not point at a run that can be continued."""


def user_error_of(error: BaseException) -> SeglabError | None:
    """The SeglabError behind `error` (Hydra wraps errors raised inside `instantiate`), if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SeglabError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
