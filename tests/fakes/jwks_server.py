"""A platform's key set URL that misbehaves on request, over a real socket.

    with JwksServer(platform.jwks) as server:
        server.mode = "drip"          # what the next requests get
        cache.key_for(server.url, kid)

Modes: "ok" (the JWKS at once), "503", "drip" (headers at once, then the first `drip_bytes`
bytes of the body one per `drip_seconds`, then the rest), "stall" (reads the request, answers
nothing), "huge" (an endless-looking chunked body, `huge_bytes` of it, as fast as the socket
takes it), "huge-announced" (the same with a Content-Length), "redirect" (302 to
`redirect_to`). `GET /moved` always answers 302 to `/certs` on the same server.

A raw socket server rather than a WSGI app, so that what goes on the wire (and when) is exactly
what the test says. `requests` counts requests, `bytes_sent` the body bytes the socket took.
"""
from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable

CHUNK = 64 * 1024


class JwksServer:
    def __init__(self, jwks: Callable[[], dict], host: str = "127.0.0.1"):
        self.jwks = jwks
        self.mode = "ok"
        self.drip_bytes = 18
        self.drip_seconds = 1.0
        self.huge_bytes = 84 * 1024 * 1024
        self.redirect_to = ""
        self.requests = 0
        self.bytes_sent = 0
        self.request_arrived = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server = socketserver.ThreadingTCPServer((host, 0), self._handler_class(), bind_and_activate=True)
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        self.url = self.base_url + "/certs"
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> JwksServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- answers --------------------------------------------------------------------------------
    def _handler_class(self):
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                # the tool hung up: that is what these modes are for
                with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
                    server._answer(self.request)

        return Handler

    def _answer(self, sock: socket.socket) -> None:
        path = _read_request_path(sock)
        with self._lock:
            self.requests += 1
        self.request_arrived.set()
        if path == "/moved":
            return self._send(sock, "302 Found", b"", {"Location": "/certs"})
        mode = self.mode
        if mode == "ok":
            return self._send(sock, "200 OK", self._body(), {"Content-Type": "application/json"})
        if mode == "503":
            return self._send(sock, "503 Service Unavailable", b"down", {"Content-Type": "text/plain"})
        if mode == "redirect":
            return self._send(sock, "302 Found", b"", {"Location": self.redirect_to})
        if mode == "stall":
            self._closing.wait(30)
            return None
        if mode == "drip":
            return self._drip(sock)
        return self._huge(sock, announced=mode == "huge-announced")

    def _body(self) -> bytes:
        return json.dumps(self.jwks()).encode()

    def _send(self, sock, status: str, body: bytes, headers: dict) -> None:
        head = _head(status, {**headers, "Content-Length": str(len(body))})
        sock.sendall(head + body)
        self._count(len(body))

    def _drip(self, sock) -> None:
        body = b" " * self.drip_bytes + self._body()  # JSON allows leading whitespace
        sock.sendall(_head("200 OK", {"Content-Type": "application/json", "Content-Length": str(len(body))}))
        for index in range(self.drip_bytes):
            if self._closing.wait(self.drip_seconds):
                return
            sock.sendall(body[index:index + 1])
            self._count(1)
        sock.sendall(body[self.drip_bytes:])
        self._count(len(body) - self.drip_bytes)

    def _huge(self, sock, announced: bool) -> None:
        framing = {"Content-Length": str(self.huge_bytes)} if announced else {"Transfer-Encoding": "chunked"}
        sock.sendall(_head("200 OK", {"Content-Type": "application/json", **framing}))
        padding = b" " * CHUNK
        sent = 0
        while sent < self.huge_bytes and not self._closing.is_set():
            sock.sendall(padding if announced else b"%x\r\n%s\r\n" % (len(padding), padding))
            sent += len(padding)
            self._count(len(padding))
        if not announced:
            sock.sendall(b"0\r\n\r\n")

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n


def _head(status: str, headers: dict) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


def _read_request_path(sock) -> str:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    request_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    return parts[1].split("?", 1)[0] if len(parts) > 1 else ""


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
