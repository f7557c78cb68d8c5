"""Errors a user causes (bad config, missing data), and how they are reported: every entry
point (`seglab.cli.*`, `python -m seglab.data.stats`, ...) prints them without a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from omegaconf.errors import InterpolationResolutionError
from rich.console import Console

T = TypeVar("T")
console = Console(stderr=True)


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


def user_error(error: BaseException) -> SeglabError | None:
    """The SeglabError behind `error` (Hydra wraps errors raised inside `instantiate`)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SeglabError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def user_message(error: SeglabError) -> str:
    """The error's own words; a DataLoader worker prefixes them with its traceback: drop it."""
    text = str(error)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]  # "seglab.errors.BadSampleError: <message>"
        head, _, message = last.partition(": ")
        return message if head.endswith(type(error).__name__) else last
    return text


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Errors the user can fix → a red message and exit code 2; anything else → traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        # Hydra wraps errors raised while instantiating, OmegaConf those of a resolver
        # (data=folder's class list): either way the SeglabError inside is the message.
        except (SeglabError, InstantiationException, InterpolationResolutionError) as error:
            found = user_error(error)
            if found is None:
                raise
            console.print(
                f"[bold red]error:[/] {user_message(found)}", highlight=False, soft_wrap=True
            )
            sys.exit(2)

    return wrapper
