"""A Slack-compatible webhook receiver on 127.0.0.1 for alert tests: records every POSTed JSON body.

    with WebhookReceiver() as hook:
        notify(url=hook.url)
        assert hook.bodies[0]["text"].startswith(":rotating_light:")

``status`` (default 200) is what it answers; set it to 500 to play a failing Slack.
"""

from __future__ import annotations

import http.server
import json
import threading


class WebhookReceiver:
    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if receiver.status == 200 else b"error")

            def log_message(self, fmt, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/strata"

    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
