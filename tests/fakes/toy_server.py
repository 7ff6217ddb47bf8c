"""The toy video service behind tests/toy_provider: rooms over JSON, joins signed with the shared
secret, and webhooks it sends (signed) as a real service would. Served over real HTTP.

    with FakeToyVideo("secret") as toy:
        toy.send_webhook(tool_url + "/webhooks/toy", [toy.joined(room, user, at)])
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from urllib.parse import urlencode

import requests
from flask import Flask, Response, abort, request

from tests.fakes.http_server import ServedApp


class FakeToyVideo:
    def __init__(self, secret: str):
        self.secret = secret
        self.rooms: dict[str, dict] = {}
        self.joins: list[dict] = []
        self.calls: list[str] = []
        self._runs = 0
        self._lock = threading.Lock()
        self._server = ServedApp(self._build_app())
        self.url = self._server.url

    def __enter__(self) -> FakeToyVideo:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    # ---------------------------------------------------------------- the service's API
    def _build_app(self) -> Flask:
        app = Flask(f"fake_toy_{id(self)}")
        app.add_url_rule("/rooms/<room>", "room", self._room, methods=["PUT", "GET", "DELETE"])
        app.add_url_rule("/join", "join", self._join)
        return app

    def _room(self, room: str):
        if request.headers.get("X-Toy-Key") != self.secret:
            abort(401)
        with self._lock:
            self.calls.append(f"{request.method} {room}")
            if request.method == "PUT" and room not in self.rooms:
                self._runs += 1
                self.rooms[room] = {"run": f"toy-run-{self._runs}", "started_ms": int(time.time() * 1000),
                                    "participants": {}}
            if request.method == "DELETE":
                self.rooms.pop(room, None)
                return Response(status=204)
            if room not in self.rooms:
                return Response(status=404)
            return self._status(room)

    def _status(self, room: str) -> Response:
        state = self.rooms[room]
        return Response(json.dumps({"run": state["run"], "started_ms": state["started_ms"],
                                    "participants": list(state["participants"].values())}),
                        mimetype="application/json")

    def _join(self):
        text = request.query_string.decode().rsplit("&sig=", 1)[0]
        expected = hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.args.get("sig", "")):
            return Response("bad signature", status=403)
        with self._lock:
            room = self.rooms.get(request.args["room"])
            if room is None:
                return Response("no such class", status=404)
            person = {key: request.args[key] for key in ("user", "name", "role")}
            room["participants"][person["user"]] = person
            self.joins.append({**person, "room": request.args["room"], "leave": request.args.get("leave")})
        return Response("In the toy class", mimetype="text/plain")

    # ---------------------------------------------------------------- webhooks it sends
    def run_of(self, room: str) -> str:
        return self.rooms[room]["run"]

    def event(self, kind: str, room: str, at: int, **person) -> dict:
        return {"kind": kind, "room": room, "run": self.run_of(room), "at": at,
                "run_started": self.rooms[room]["started_ms"], **person}

    def send_webhook(self, url: str, events: list[dict]) -> requests.Response:
        body = json.dumps(events)
        signature = hmac.new(self.secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        return requests.post(url, data=body, headers={"X-Toy-Signature": signature,
                                                      "Content-Type": "application/json"}, timeout=10)

    def join_query(self, **params) -> str:
        return urlencode(params)
