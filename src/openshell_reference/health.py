"""The plaintext health listener: ``/healthz``, ``/readyz`` and ``/health``."""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .errors import ListenError
from .logs import event

__all__ = ["HealthListener"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HealthListener:
    """Answer liveness and readiness probes on their own port.

    ``/healthz`` answers 200 while the process runs; ``/readyz`` and
    ``/health`` answer 200 once ``ready()`` is true, 503 before.
    """

    def __init__(
        self, host: str, port: int, ready: Callable[[], bool], version: str
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._version = version
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        handler = self._handler()
        try:
            self._server = _Server((self.host, self.port), handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ListenError(
                    f"health port {self.port} on {self.host} is already in use; "
                    "choose another --health-port"
                ) from None
            raise ListenError(
                f"cannot listen on {self.host}:{self.port} for health: "
                f"{error.strerror or error}"
            ) from None

    def start(self) -> None:
        if self._server is None:
            self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # shutdown() returns at the loop's next wake-up: a short interval
            # keeps every gateway stop from waiting most of one out.
            kwargs={"poll_interval": 0.05},
            name="health",
            daemon=True,
        )
        self._thread.start()
        event("info", "health_listening", address=f"{self.host}:{self.port}")

    def close(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(2.0)
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ready = self._ready
        version = self._version

        class Handler(BaseHTTPRequestHandler):
            server_version = "openshell-reference-health"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._answer(200, {"status": "alive"})
                elif path in ("/readyz", "/health"):
                    is_ready = ready()
                    body = {
                        "status": "healthy" if is_ready else "starting",
                        "version": version,
                    }
                    self._answer(200 if is_ready else 503, body)
                else:
                    self._answer(404, {"error": f"no such path: {path}"})

            def _answer(self, status: int, body: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                event("trace", "health_request", line=format % args)

        return Handler
