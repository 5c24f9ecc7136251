"""`inferplane rollout`: the plan's schedule and gates, quality gates included, and what
`start` sends to /admin/rollouts (read back by the admin API's own parser)."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import orjson
import pytest
from typer.testing import CliRunner

from inferplane.cli.rollout_cmd import app
from inferplane.control import rollout_api
from inferplane.control.rollout import Gates, RolloutState
from inferplane.control.rollout_runtime import describe

runner = CliRunner()


def test_plan_prints_steps_and_gates() -> None:
    result = runner.invoke(app, ["plan", "chat", "--to", "chat-v2", "--hold", "2m"])
    assert result.exit_code == 0, result.output
    assert "rollout of chat-v2 to pool chat" in result.output
    assert "8m" in result.output  # four holds of 2 minutes
    assert "error rate" in result.output


def test_bad_steps_exit_2() -> None:
    result = runner.invoke(app, ["plan", "chat", "--to", "v2", "--steps", "5,50"])
    assert result.exit_code == 2 and "end at 100" in result.output
    result = runner.invoke(app, ["plan", "chat", "--to", "v2", "--steps", "5,x"])
    assert result.exit_code == 2 and "percentages" in result.output


def test_plan_shows_the_quality_gates_given() -> None:
    flags = ["--logprob-drop", "0.3", "--feedback-margin", "0.05", "--drift-margin", "0.2"]
    result = runner.invoke(app, ["plan", "chat", "--to", "v2", *flags])
    assert result.exit_code == 0, result.output
    assert "logprob is more than 0.3 below" in result.output
    assert "by more than 0.05" in result.output and "by more than 0.2" in result.output
    plain = runner.invoke(app, ["plan", "chat", "--to", "v2"])
    assert "no quality gate" in plain.output
    negative = runner.invoke(app, ["plan", "chat", "--to", "v2", "--drift-margin", "-1"])
    assert negative.exit_code == 2


class _Rollouts(BaseHTTPRequestHandler):
    """A listener for POST /admin/rollouts that keeps the bodies it gets."""

    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).bodies.append(body)
        answer = orjson.dumps(describe(RolloutState(rollout_api._plan(body))))
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def rollouts_url() -> Iterator[str]:
    _Rollouts.bodies.clear()
    server = HTTPServer(("127.0.0.1", 0), _Rollouts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_start_sends_the_quality_gates_the_admin_api_reads(rollouts_url: str) -> None:
    flags = ["--logprob-drop", "0.3", "--drift-margin", "0.2", "--url", rollouts_url]
    result = runner.invoke(app, ["start", "chat", "--to", "v2", "--hold", "1m", *flags])
    assert result.exit_code == 0, result.output
    (body,) = _Rollouts.bodies
    plan = rollout_api._plan(body)  # what /admin/rollouts makes of it
    assert plan.gates == Gates(logprob_drop=0.3, drift_margin=0.2)
    assert (plan.pool, plan.to_model, plan.hold_s) == ("chat", "v2", 60.0)
    assert "feedback_margin" not in orjson.loads(body)  # not given: off
