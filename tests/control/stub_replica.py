"""A stand-in replica process for control-plane tests: /ready, /health, /metrics, the admin
sleep / wake calls and /v1/completions (answered after `delay` seconds from the body), with a
draining SIGTERM. A model version of "fail-500" is the fault seam: such a replica is ready but
answers every completion with 500 (a broken canary). Starts in well under a second, so the
controller's logic is tested quickly against real processes; the e2e tests run the real
`inferplane serve`."""

import argparse
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


class Stub:
    def __init__(self) -> None:
        self.sleeping = False
        self.sleep_delay_s = 0.0
        self.draining = False
        self.fail = False
        self.in_flight = 0
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    stub: Stub

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any] | str) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        stub = self.stub
        if self.path == "/ready":
            ok = not (stub.sleeping or stub.draining)
            self._send(200 if ok else 503, {"status": "ready" if ok else "not ready"})
        elif self.path == "/metrics":
            self._send(200, f"vllm:num_requests_running {stub.in_flight}\n")
        else:
            self._send(200, {"status": "ok"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        stub = self.stub
        if self.path == "/admin/sleep":
            time.sleep(stub.sleep_delay_s)
            stub.sleeping = True
            self._send(200, {"sleeping": True})
        elif self.path == "/admin/wake":
            time.sleep(0.2)
            stub.sleeping = False
            self._send(200, {"sleeping": False})
        elif self.path == "/admin/drain":
            stub.draining = True
            self._send(200, {"draining": True, "in_flight": stub.in_flight})
        elif stub.draining:
            self._send(503, {"error": {"message": "draining"}})
        elif stub.sleeping:  # as the real server answers
            self._send(503, {"error": {"message": "asleep", "code": "sleeping"}})
        elif stub.fail:
            self._send(500, {"error": {"message": "broken on purpose"}})
        else:
            with stub.lock:
                stub.in_flight += 1
            time.sleep(float(body.get("delay", 0.0)))
            with stub.lock:
                stub.in_flight -= 1
            self._send(200, {"choices": [{"text": "ok"}], "model": body.get("model")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--sleep-delay", type=float, default=0.0)  # an /admin/sleep this slow
    parser.add_argument("--model-version", default="")
    args, _ = parser.parse_known_args()
    time.sleep(args.start_delay)
    stub = Stub()
    stub.fail = args.model_version == "fail-500"
    stub.sleep_delay_s = args.sleep_delay
    Handler.stub = stub
    server = ThreadingHTTPServer((args.host, args.port), Handler)

    def drain(_signum: int, _frame: FrameType | None) -> None:
        stub.draining = True

        def finish() -> None:
            while stub.in_flight:
                time.sleep(0.01)
            server.shutdown()

        threading.Thread(target=finish, daemon=True).start()

    signal.signal(signal.SIGTERM, drain)
    server.serve_forever()


if __name__ == "__main__":
    main()
