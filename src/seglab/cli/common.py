"""What every entry point shares: user-error reporting."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from rich.console import Console

from seglab.errors import SeglabError, user_error_of

T = TypeVar("T")
console = Console(stderr=True)


def _message(error: SeglabError) -> str:
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
        except (SeglabError, InstantiationException) as error:
            user_error = user_error_of(error)
            if user_error is None:
                raise
            console.print(
                f"[bold red]error:[/] {_message(user_error)}", highlight=False, soft_wrap=True
            )
            sys.exit(2)

    return wrapper
