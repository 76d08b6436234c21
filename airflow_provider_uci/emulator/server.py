"""Run the emulator with uvicorn: in the foreground (``serve``) or on a thread (:class:`EmbeddedEmulator`)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from airflow_provider_uci.emulator.access import check_exposure
from airflow_provider_uci.emulator.app import create_app
from airflow_provider_uci.emulator.config import EmulatorSettings


def _transport_finder(server: uvicorn.Server) -> Any:
    """Find the transport of the connection a request came in on (used to drop it on purpose)."""

    def find(client: Any) -> Any:
        wanted = tuple(client) if client else None
        for connection in list(server.server_state.connections):
            if wanted is not None and getattr(connection, "client", None) == wanted:
                return getattr(connection, "transport", None)
        return None

    return find


def build_server(settings: EmulatorSettings, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the emulator's application.

    It refuses a non-loopback ``host`` without an admin token. The access log stays off, and the
    client address of a request forwarded by a proxy on this host is the forwarded one, which is the
    address the admin routes' loopback rule must judge.

    :raises SettingsError: for a non-loopback ``host`` without ``settings.admin_token``.
    """
    check_exposure(host, settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=3,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1,::1",
    )
    server = uvicorn.Server(config)
    app.state.find_transport = _transport_finder(server)
    return server


def serve(
    settings: EmulatorSettings, host: str = "127.0.0.1", port: int = 9000, log_level: str = "info"
) -> None:
    """Serve until interrupted; the emulator's own messages (job runs) go to stderr at ``log_level``."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("airflow_provider_uci")
    package_log.addHandler(handler)
    package_log.setLevel(log_level.upper())
    build_server(settings, host, port, log_level).run()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedEmulator:
    """The emulator on a background thread of this process, for demos and in-process runs.

    :param settings: the emulator's settings.
    :param host: interface to listen on.
    :param port: port, or 0 for a free one.
    """

    def __init__(self, settings: EmulatorSettings, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.server = build_server(settings, self.host, self.port, log_level="warning")
        self._thread = threading.Thread(target=self.server.run, name="uci-emulator", daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the gateway paths, like a real ``https://<host>/api``."""
        return f"http://{self.host}:{self.port}/api"

    @property
    def app(self) -> Any:
        return self.server.config.app

    def start(self, timeout: float = 15.0) -> EmbeddedEmulator:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
