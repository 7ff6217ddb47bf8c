"""Serve a WSGI app on a free loopback port in a background thread, for the test fakes.

    with ServedApp(app) as server:
        requests.get(server.url + "/path")

`stop()` closes the listening socket, so a "server down" test gets connection refused.
"""
from __future__ import annotations

import threading

from werkzeug.serving import make_server


class LaterApp:
    """A WSGI app bound to a socket now and filled in later (`.app = …`): the tool must know its
    own URL (TOOL_BASE_URL) before it is created, and the URL is known once the port is."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


class ServedApp:
    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, poll_interval: float = 0.02,
                 request_handler=None):
        self.app = app
        # serve_forever's poll interval bounds how long stop() takes (the default is 0.5 s).
        self.poll_interval = poll_interval
        self.host = host
        # request_handler: the tool's own request log (access_log.QuietRequestHandler), say.
        self._server = make_server(host, port, app, threaded=True, request_handler=request_handler)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> ServedApp:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": self.poll_interval}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
