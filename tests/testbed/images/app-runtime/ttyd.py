#!/usr/bin/python3
"""ttyd stand-in for the offline test bed (ttyd itself cannot be had here).

A real web terminal: HTTP + WebSocket + PTY, speaking ttyd 1.7's protocol (the
"tty" subprotocol; client frames '0' input, '1' resize JSON, first frame a JSON
with AuthToken; server frames '0' output, '1' title, '2' preferences), with the
ttyd flags the collection uses: -p, -i (address or UNIX socket), -c (basic auth),
-H (trusted auth header), -W, -O, -m, -t, -b. Serves xterm.js from libjs-xterm.
Test bed only: the product's default is the real ttyd binary.

As strict as ttyd 1.7 where leniency could hide a failure (its src/http.c and
src/protocol.c): with -H, a request without that header (or with it empty) gets 407
and a WebSocket is refused; with -c, HTTP needs the Basic credential and a WebSocket
its AuthToken; with -O, a WebSocket without an Origin, or whose Origin's host[:port]
(the port left out for 80 and 443) is not the Host header, is refused; -t options
reach the client in the preferences frame.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
from typing import Any
from urllib.parse import urlparse

import tornado.ioloop
import tornado.web
import tornado.websocket
from ptyprocess import PtyProcessUnicode
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket

XTERM = "/usr/share/javascript/xterm"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{base}/xterm/xterm.css">
<style>html,body{{margin:0;height:100%;background:#000}}#terminal{{height:100%}}</style>
</head><body><div id="terminal"></div>
<script src="{base}/xterm/xterm.js"></script>
<script>
const term = new Terminal({{cols: 100, rows: 30}});
term.open(document.getElementById("terminal"));
const enc = new TextEncoder();
fetch("{base}/token").then(r => r.json()).then(({{token}}) => {{
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(proto + "//" + location.host + "{base}/ws", ["tty"]);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {{
    ws.send(enc.encode(JSON.stringify({{AuthToken: token, columns: term.cols, rows: term.rows}})));
    term.focus();
  }};
  ws.onmessage = (ev) => {{
    const data = new Uint8Array(ev.data);
    const kind = String.fromCharCode(data[0]);
    if (kind === "0") term.write(data.slice(1));
    if (kind === "1") document.title = new TextDecoder().decode(data.slice(1));
  }};
  term.onData((d) => ws.readyState === 1 && ws.send(enc.encode("0" + d)));
}});
</script></body></html>
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ttyd", add_help=False)
    p.add_argument("-p", "--port", type=int, default=7681)
    p.add_argument("-i", "--interface", default="")
    p.add_argument("-c", "--credential", default="")
    p.add_argument("-H", "--auth-header", default="")
    p.add_argument("-W", "--writable", action="store_true")
    p.add_argument("-O", "--check-origin", action="store_true")
    p.add_argument("-m", "--max-clients", type=int, default=0)
    p.add_argument("-t", "--client-option", action="append", default=[])
    p.add_argument("-b", "--base-path", default="")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if not args.command:
        p.error("a command to run is required")
    return args


def client_options(pairs: list[str]) -> dict[str, Any]:
    """-t key=value, as ttyd reads them: a value that parses as JSON is that JSON."""
    prefs: dict[str, Any] = {}
    for pair in pairs:
        key, _equals, value = pair.partition("=")
        try:
            prefs[key] = json.loads(value)
        except ValueError:
            prefs[key] = value
    return prefs


class Settings:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.token = base64.b64encode(args.credential.encode()).decode() if args.credential else ""
        self.prefs = client_options(args.client_option)
        self.clients = 0


def log_request(handler: tornado.web.RequestHandler, settings: Settings) -> None:
    """Test bed instrumentation (not ttyd's): which headers reached the terminal, by name,
    and the trusted header's value (a login name), so tests see what the proxy passes."""
    names = sorted(name.lower() for name in handler.request.headers)
    user = handler.request.headers.get(settings.args.auth_header, "") if settings.args.auth_header else ""
    request = handler.request
    print(f"request {request.method} {request.path} user={user!r} headers={names}", flush=True)


def refusal(handler: tornado.web.RequestHandler, settings: Settings) -> tuple[int, str, str] | None:
    """ttyd's check_auth: None when the request may pass, else (status, header, value)."""
    if settings.args.auth_header:
        if handler.request.headers.get(settings.args.auth_header, ""):
            return None
        return 407, "Proxy-Authenticate", 'Basic realm="ttyd"'
    if settings.token and handler.request.headers.get("Authorization", "") != f"Basic {settings.token}":
        return 401, "WWW-Authenticate", 'Basic realm="ttyd"'
    return None


def origin_matches_host(origin: str | None, host: str) -> bool:
    """ttyd's check_host_origin: the Origin's host[:port] (no port for 80/443) == Host."""
    if not origin:
        return False
    url = urlparse(origin)
    if not url.hostname:
        return False
    port = url.port or {"http": 80, "https": 443}.get(url.scheme, 0)
    expected = url.hostname if port in (80, 443) else f"{url.hostname}:{port}"
    return expected.lower() == host.lower()


class Page(tornado.web.RequestHandler):
    def initialize(self, settings: Settings) -> None:
        self.s = settings

    def prepare(self) -> None:
        log_request(self, self.s)
        refused = refusal(self, self.s)
        if refused:
            status, header, value = refused
            self.set_status(status)
            self.set_header(header, value)
            self.finish()

    def get(self) -> None:
        base = self.s.args.base_path.rstrip("/")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(PAGE.format(title="ttyd - " + " ".join(self.s.args.command), base=base))


class Token(Page):
    def get(self) -> None:
        self.finish({"token": self.s.token})


class Terminal(tornado.websocket.WebSocketHandler):
    def initialize(self, settings: Settings) -> None:
        self.s = settings
        self.pty: PtyProcessUnicode | None = None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "tty" if "tty" in subprotocols else None

    def check_origin(self, origin: str) -> bool:
        return True  # checked in get(), also when the Origin header is missing

    async def get(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 (tornado's signature)
        # ttyd refuses the upgrade in LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: no 101.
        log_request(self, self.s)
        origin = self.request.headers.get("Origin")
        if self.s.args.check_origin and not origin_matches_host(origin, self.request.headers.get("Host", "")):
            self.set_status(403)
            self.finish("origin refused (--check-origin)")
            return
        if self.s.args.auth_header and not self.request.headers.get(self.s.args.auth_header, ""):
            self.set_status(403)
            self.finish("auth header missing")
            return
        if self.s.args.max_clients and self.s.clients >= self.s.args.max_clients:
            self.set_status(429)
            self.finish("too many clients")
            return
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        self.s.clients += 1

    def on_message(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        if self.pty is None:
            hello = json.loads(data.decode())
            if self.s.token and not self.s.args.auth_header and hello.get("AuthToken") != self.s.token:
                self.close(4000, "auth failed")
                return
            self.spawn(int(hello.get("columns", 80)), int(hello.get("rows", 24)))
            return
        kind, body = chr(data[0]), data[1:].decode(errors="replace")
        if kind == "0" and self.s.args.writable:
            self.pty.write(body)
        elif kind == "1":
            size = json.loads(body)
            self.pty.setwinsize(int(size["rows"]), int(size["columns"]))

    def spawn(self, columns: int, rows: int) -> None:
        env = {**os.environ, "TERM": "xterm-256color"}
        self.pty = PtyProcessUnicode.spawn(self.s.args.command, dimensions=(rows, columns), env=env)
        self.write_message(b"1" + " ".join(self.s.args.command).encode(), binary=True)
        self.write_message(b"2" + json.dumps(self.s.prefs).encode(), binary=True)
        loop = tornado.ioloop.IOLoop.current()
        loop.add_handler(self.pty.fd, self.on_output, loop.READ | loop.ERROR)

    def on_output(self, fd: int, events: int) -> None:
        assert self.pty is not None
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            tornado.ioloop.IOLoop.current().remove_handler(fd)
            self.close(1000)
            return
        self.write_message(b"0" + data, binary=True)

    def on_close(self) -> None:
        self.s.clients -= 1
        if self.pty is not None:
            tornado.ioloop.IOLoop.current().remove_handler(self.pty.fd)
            if self.pty.isalive():
                self.pty.terminate(force=True)


def main() -> None:
    args = parse_args(sys.argv[1:])
    settings = Settings(args)
    base = args.base_path.rstrip("/")
    app = tornado.web.Application(
        [
            (rf"{base}/", Page, {"settings": settings}),
            (rf"{base}/token", Token, {"settings": settings}),
            (rf"{base}/ws", Terminal, {"settings": settings}),
            (rf"{base}/xterm/(.*)", tornado.web.StaticFileHandler, {"path": XTERM}),
        ]
    )
    server = HTTPServer(app)
    if args.interface.endswith(".sock") or args.interface.startswith("/"):
        server.add_socket(bind_unix_socket(args.interface, mode=0o666))
        where = args.interface
    else:
        server.listen(args.port, address=args.interface or "")
        where = f"{args.interface or 'all interfaces'}:{args.port}"
    print(f"ttyd (test bed stand-in) listening on {where}", flush=True)
    loop = tornado.ioloop.IOLoop.current()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.add_callback_from_signal(loop.stop))
    loop.start()


if __name__ == "__main__":
    main()
