"""A real HTTP receiver for the webhook sink's tests: ``http.server`` in a thread on
127.0.0.1, recording every POST and answering what the test says."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """An HTTP server in a thread that records every POST and answers what ``answer``
    says (a status, after any delay it likes)."""

    def __init__(self) -> None:
        self.answer: Callable[[dict], int] = lambda payload: 200
        self.attempts: list[tuple[str, int]] = []  # (event id, status answered)
        self.payloads: list[dict] = []  # what it accepted (2xx)
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                status = receiver.answer(payload)
                with receiver.lock:
                    receiver.attempts.append((payload["event_id"], status))
                    receiver.headers.append(dict(self.headers))
                    if status < 300:
                        receiver.payloads.append(payload)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        # The same port again after a stop (SO_REUSEADDR is on for ThreadingHTTPServer).
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Gone: connections are refused until ``start`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered_ids(self) -> list[str]:
        with self.lock:
            return [p["event_id"] for p in self.payloads]

    def tried(self) -> int:
        with self.lock:
            return len(self.attempts)
