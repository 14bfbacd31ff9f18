"""Serve a WSGI stand-in on 127.0.0.1 in a background thread. Imports: stdlib."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

WSGIApp = Callable[..., Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """The stand-in keeps its own request log; stderr stays clean."""


class Server:
    """A running loopback server; `url` is where clients reach it."""

    def __init__(self, app: WSGIApp, *, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        # Loopback only: the sandbox never listens on another interface.
        self._httpd = make_server(
            "127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"sandbox-{self.port}", daemon=True
        )

    def start(self) -> Server:
        """Start serving in a daemon thread (once)."""
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: WSGIApp, *, port: int = 0, tls: ssl.SSLContext | None = None) -> Server:
    """Start `app` on 127.0.0.1, on a free port unless given; usable as a context manager.

    It speaks HTTPS with `tls`.
    """
    return Server(app, port=port, tls=tls).start()
