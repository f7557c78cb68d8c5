"""What every entry point shares: user-error reporting and the Hydra runtime's facts."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from rich.console import Console

from seglab.errors import SeglabError

T = TypeVar("T")
console = Console(stderr=True)


def _user_error(error: BaseException) -> SeglabError | None:
    """The SeglabError behind `error` (Hydra wraps errors raised inside `instantiate`)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, SeglabError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
            user_error = _user_error(error)
            if user_error is None:
                raise
            console.print(
                f"[bold red]error:[/] {_message(user_error)}", highlight=False, soft_wrap=True
            )
            sys.exit(2)

    return wrapper


def hydra_choices() -> dict[str, Any]:
    """Config group choices of the running app (`{"model": "unet", ...}`), {} outside Hydra."""
    if not HydraConfig.initialized():
        return {}
    return dict(HydraConfig.get().runtime.choices)


def hydra_overrides() -> list[str]:
    """The task overrides given on the command line, [] outside Hydra."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def output_dir(cfg: Any) -> Path:
    """The run's output folder (created)."""
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path
