"""Keep credentials out of MLflow: params, tags and logged config files are redacted.

Two rules. A value is secret when its *name* looks like a credential (a config key or an
environment variable with a password/secret/token/key word in it), and any string that
*contains* the value of such an environment variable (say `MLFLOW_TRACKING_PASSWORD` reached a
param through `${oc.env:...}` or the command line) has that value masked. Passwords inside
URLs (`https://user:pass@host`) are masked too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# Words that make a name secret; compared against the name's parts ("aws_secret_access_key" →
# aws, secret, access, key), so TOKENIZERS_PARALLELISM or `monitor` do not match.
SECRET_WORDS = frozenset(
    {
        "password", "passwd", "secret", "token", "key", "apikey", "credential", "credentials",
        "privatekey", "passphrase",
    }
)  # fmt: skip
MIN_SECRET_LENGTH = 6  # shorter environment values ("1", "true") are too common to mask by value
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?P<tail>@)")
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_+~][\w.+~-]*)=(?P<value>'[^']*'|\"[^\"]*\"|[^\s]+)")


def is_secret_name(name: str) -> bool:
    """Whether a config key or variable name (dotted, snake, kebab or camel case) is a credential."""
    last = name.rsplit(".", 1)[-1]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", last).lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", snake) if p]
    return any(p in SECRET_WORDS for p in parts) or "".join(parts) in SECRET_WORDS


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-named environment variables, longest first (so overlaps mask fully)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret value, URL password and `secret_name=value` masked."""
    for value in environment_secrets() if secrets is None else secrets:
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}\g<tail>", text)
    return _ASSIGNMENT.sub(
        lambda m: f"{m['name']}={MASK}" if is_secret_name(m["name"].lstrip("+~")) else m[0], text
    )


def redact_params(params: Mapping[str, str]) -> dict[str, str]:
    """Flat `{dotted.key: text}` params (or tags) with secret keys and values masked."""
    secrets = environment_secrets()
    return {k: MASK if is_secret_name(k) else redact_text(v, secrets) for k, v in params.items()}


def redact_config(node: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a nested config (dicts, lists, scalars) with secret keys and values masked."""
    secrets = environment_secrets() if secrets is None else secrets
    if isinstance(node, Mapping):
        return {
            k: MASK if is_secret_name(str(k)) and node[k] is not None else redact_config(v, secrets)
            for k, v in node.items()
        }
    if isinstance(node, list | tuple):
        return [redact_config(v, secrets) for v in node]
    if isinstance(node, str):
        return redact_text(node, secrets)
    return node


def masked_paths(original: Any, redacted: Any, prefix: str = "") -> list[str]:
    """Dotted paths where `redact_config` changed a value (saved so a resume masks them too).

    A run resumed without the environment it started in cannot recognise secrets by value.
    """
    if isinstance(original, Mapping) and isinstance(redacted, Mapping):
        return [
            p for k in original for p in masked_paths(original[k], redacted[k], f"{prefix}{k}.")
        ]
    if isinstance(original, list | tuple) and isinstance(redacted, list | tuple):
        pairs = zip(original, redacted, strict=True)
        return [p for i, (o, r) in enumerate(pairs) for p in masked_paths(o, r, f"{prefix}{i}.")]
    return [prefix[:-1]] if original != redacted else []


def mask_paths(config: Any, paths: Iterable[str]) -> Any:
    """`config` (nested dicts/lists, modified in place and returned) with `paths` masked."""
    for path in paths:
        parts = path.split(".")
        node = config
        try:
            for part in parts[:-1]:
                node = node[int(part)] if isinstance(node, list) else node[part]
            if isinstance(node, list):
                node[int(parts[-1])] = MASK
            elif parts[-1] in node:
                node[parts[-1]] = MASK
        except (KeyError, IndexError, ValueError, TypeError):
            continue  # the config no longer has that key: nothing to hide
    return config
