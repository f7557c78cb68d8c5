"""`make server`: a team's MLflow tracking server, locked by MLflow's basic-auth app.

    MLFLOW_AUTH_ADMIN_PASSWORD=... python -m seglab.cli.server --root mlserver --host 127.0.0.1

Runs live in a sqlite database under `--root`, artifacts under `--root/artifacts` (served
through the server, so they are behind the same login), users and permissions in
`--root/basic_auth.db`. The admin is created on first start with the password MLflow's auth app
reads from MLFLOW_AUTH_ADMIN_PASSWORD; it is never written to a file. Users other than the
admin see nothing until granted (default permission NO_PERMISSIONS): a user may create
experiments (and manages those), but reading or logging into another's needs a grant.
Clients log with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from seglab.errors import ConfigError, report_user_errors

ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"  # MLflow's own variable (auth app, first start)
AUTH_CONFIG_ENV = "MLFLOW_AUTH_CONFIG_PATH"
AUTH_CONFIG = "basic_auth.ini"
# The auth app's CSRF key, shared by the server's workers: the user's, else a new one each start.
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
DEFAULT_PERMISSION = "NO_PERMISSIONS"
AUTH_CACHE_TTL_S = 60


def auth_config(root: Path, admin_username: str) -> str:
    """The auth app's ini: user store under `root`, nothing granted by default, no password."""
    return (
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
        f"admin_username = {admin_username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # A checked password is trusted for this long (per worker) instead of re-hashing it
        # (PBKDF2) on every request, and a run sends many (MLflow's basic_auth.ini: about 3x the
        # throughput). The price: a revoked password may work on other workers that long.
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
    )


def server_command(root: Path, host: str, port: int, extra: list[str]) -> list[str]:
    """`mlflow server` with the basic-auth app over the store and artifacts under `root`."""
    return [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", host, "--port", str(port), *extra,
    ]  # fmt: skip


def prepare_server(root: Path, admin_username: str) -> dict[str, str]:
    """Create `root` and its auth config; the environment the server runs with. Refuses to start
    without an admin password, unless the user store already holds the admin (a restart)."""
    if not os.environ.get(ADMIN_PASSWORD_ENV) and not (root / "basic_auth.db").is_file():
        raise ConfigError(
            f"{ADMIN_PASSWORD_ENV} is not set: the team server's admin ({admin_username!r}) is "
            "created on first start with that password (export it, then run make server again)"
        )
    root.mkdir(parents=True, exist_ok=True)
    config = root / AUTH_CONFIG
    config.write_text(auth_config(root, admin_username))
    env = {**os.environ, AUTH_CONFIG_ENV: str(config)}
    env.setdefault(SECRET_KEY_ENV, secrets.token_hex(32))
    return env


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make server", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("mlserver"), help="store folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--admin", default="admin", help="the admin's user name")
    args, extra = parser.parse_known_args(argv)
    root = args.root.expanduser().resolve()
    env = prepare_server(root, args.admin)
    command = server_command(root, args.host, args.port, extra)
    print(f"team MLflow server on http://{args.host}:{args.port} (store {root})", flush=True)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
