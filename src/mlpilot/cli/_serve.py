"""``mlpilot serve`` and ``mlpilot promote``."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer

from mlpilot.cli._common import WorkspaceOption, console, open_registry, open_workspace
from mlpilot.exceptions import InvalidParameterError


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once, as uvicorn will, and say clearly why it cannot be served there.

    Raises
    ------
    InvalidParameterError
        The port is taken, needs privileges, or the host is not an address of this machine.
    """
    if port == 0:  # the system picks a free port
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise InvalidParameterError(
            f"--host {host!r} is not an address this machine can listen on ({exc.strerror}). "
            "Use 127.0.0.1, 0.0.0.0 or one of this machine's addresses."
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = (f"Port {port} on {host} is already in use by another process. Stop that process, "
                           f"or serve on another port: mlpilot serve --port {port + 1 if port < 65535 else 8000}.")
            elif exc.errno == errno.EACCES:
                message = (f"Port {port} on {host} needs privileges this user does not have (ports below 1024 "
                           "usually do); choose a port above 1023 with --port.")
            elif exc.errno == errno.EADDRNOTAVAIL:
                message = (f"--host {host!r} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or "
                           "one of its addresses.")
            else:
                message = f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another --host or --port."
            raise InvalidParameterError(message) from None


_FACTORY_PREFIX = "app_with_settings_"


def worker_factory(chosen: Mapping[str, Any]) -> str:
    """The uvicorn factory string whose app gets ``chosen`` settings (for ``--workers``).

    uvicorn imports ``module:attribute`` in each worker; the attribute's name
    carries the settings as hex-encoded JSON, which this module's
    ``__getattr__`` decodes into a factory. No file, and no environment
    variable is written.

    Examples
    --------
    >>> worker_factory({"port": 8001}).startswith("mlpilot.cli._serve:app_with_settings_")
    True
    """
    return f"{__name__}:{_FACTORY_PREFIX}{json.dumps(dict(chosen), sort_keys=True).encode().hex()}"


def __getattr__(name: str) -> Callable[[], Any]:
    if not name.startswith(_FACTORY_PREFIX):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    chosen = json.loads(bytes.fromhex(name[len(_FACTORY_PREFIX):]).decode())

    def factory() -> Any:
        from mlpilot.serve import ServeSettings, create_app

        return create_app(ServeSettings(**chosen))

    return factory


def serve(
    host: Annotated[str, typer.Option(envvar="MLPILOT_HOST", help="Interface to bind; 0.0.0.0 exposes the server to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="MLPILOT_PORT", help="TCP port (default from $MLPILOT_PORT, else 8000).", min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    workspace: WorkspaceOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    keep: Annotated[str | None, typer.Option(
        help="Delete prediction log days older than this, such as 30d, 12h or 2w (default: keep all).")] = None,
) -> None:
    """Serve every model in the workspace: REST API, web UI and /metrics."""
    import uvicorn

    from mlpilot.serve import ServeSettings, create_app

    check_port(host, port)  # before loading anything: a taken port is exit 2, not uvicorn's errno 98
    ws = open_workspace(workspace)
    chosen: dict[str, Any] = {"home": str(ws.root), "host": host, "port": port, "workers": workers}
    if "MLPILOT_TUNE_GC" not in os.environ:  # each process is the server's alone (runtime/_collector.py)
        chosen["tune_gc"] = True
    if keep is not None:
        from mlpilot.monitor import parse_keep

        parse_keep(keep)  # a bad period is exit 2 with its message, not a settings traceback
        chosen["log_keep"] = keep
    settings = ServeSettings(**chosen)
    if settings.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        console.print("[yellow]Warning:[/] serving on a public interface without MLPILOT_API_KEY.", style=None)
    console.print(f"mlpilot: serving {ws.root} on http://{host}:{port}  (UI at /, API docs at /docs)")
    if workers > 1:
        # Workers are separate processes: the settings chosen here travel in the factory's
        # name (the rest, secrets included, each worker reads from its inherited environment).
        uvicorn.run(worker_factory(chosen), factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)


def promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.", min=1)],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "champion",
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Point NAME's alias (champion by default) at VERSION; running servers swap to it."""
    import getpass

    registry = open_registry(workspace)
    previous = registry.get_aliases(name).get(alias)
    registry.set_alias(name, alias, version, by=f"mlpilot promote (user {getpass.getuser()})",
                       reason=reason or "moved by hand")
    was = f" (was version {previous})" if previous is not None else ""
    console.print(f"{name}@{alias} -> version {version}{was}")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``promote`` to ``app``."""
    app.command("serve")(serve)
    app.command("promote")(promote)


__all__ = ["check_port", "promote", "register", "serve", "worker_factory"]
