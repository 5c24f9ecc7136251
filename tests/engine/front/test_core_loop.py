"""One loop turn of the engine core: every command waiting, one step, one message."""

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.core_loop import Core
from inferplane.engine.front.link import ADD, CALL, DROP, SHUTDOWN
from tests.engine.echo_runner import PagedEchoRunner, reference

PARAMS = SamplingParams(max_tokens=3, ignore_eos=True)


def make_core() -> Core:
    return Core(LLMEngine(EngineConfig(model="test", block_size=4), PagedEchoRunner(), None))


def test_a_turn_adds_steps_and_answers_in_one_message() -> None:
    core = make_core()
    message = core.turn([(ADD, "a", [97, 98], PARAMS, 0), (ADD, "b", [99], PARAMS, 0)])
    assert [out.request_id for out in message.outputs] == ["a", "b"]
    assert message.stats is not None and message.stats.num_running == 2
    assert core.live == {"a", "b"}
    message = core.turn([(CALL, 7, "abort", "b")])
    assert message.replies == [(7, None)]
    assert [(out.request_id, out.finish_reason) for out in message.outputs] == [
        ("b", "abort"),
        ("a", None),
    ]
    while core.busy():
        core.turn([])
    assert core.live == set()
    assert core.engine.stats().generation_tokens_total == 4


def test_an_idle_turn_sends_nothing_and_bad_requests_fail_alone() -> None:
    core = make_core()
    assert not core.turn([])
    message = core.turn([(ADD, "empty", [], PARAMS, 0), (DROP, "unknown")])
    assert [rid for rid, _ in message.failures] == ["empty"]
    assert isinstance(message.failures[0][1], ValueError)
    assert core.live == set()


def test_sleep_holds_the_work_and_shutdown_stops_before_a_step() -> None:
    core = make_core()
    message = core.turn([(ADD, "a", [97], PARAMS, 0), (CALL, 1, "sleep", None)])
    assert message.outputs == [] and message.replies == [(1, None)]
    assert message.stats is not None and message.stats.sleeping
    assert not core.busy()
    message = core.turn([(CALL, 2, "wake", None)])
    assert [t.token_id for t in message.outputs[0].new_tokens] == reference([97], 1)
    message = core.turn([(CALL, 3, "abort_all", None), (SHUTDOWN,)])
    assert core.stopping and [out.finish_reason for out in message.outputs] == ["abort"]
