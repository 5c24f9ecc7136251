"""The thread link's own ways: the engine's thread loads the model, and a broken loop fails
the streams and runs the exit callbacks, as a dead engine process does."""

import threading

import pytest

from inferplane.engine.core.batch import SampledToken, StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.protocol import EngineShutdownError
from inferplane.engine.core.sampling_params import SamplingParams
from inferplane.engine.front.async_engine import AsyncLLMEngine
from inferplane.engine.front.thread_link import ThreadLink
from tests.engine.echo_runner import PagedEchoRunner

pytestmark = pytest.mark.timeout(30)
FOREVER = SamplingParams(max_tokens=100_000, ignore_eos=True)


class Fatal(BaseException):
    """Not an Exception: the core does not catch it, as it would not catch a fatal fault."""


class FatalRunner(PagedEchoRunner):
    def execute(self, batch: StepBatch) -> list[SampledToken]:
        if any(c.request_id == "fatal" for c in batch.chunks):
            raise Fatal("the loop cannot go on")
        return super().execute(batch)


def echo_engine(runner: PagedEchoRunner) -> LLMEngine:
    return LLMEngine(EngineConfig(model="test", block_size=4), runner, None)


def test_the_engine_is_built_on_the_thread_that_steps_it() -> None:
    threads: list[str] = []

    def build() -> LLMEngine:
        threads.append(threading.current_thread().name)
        return echo_engine(PagedEchoRunner())

    link = ThreadLink.load(build)
    assert threads == ["engine-step"]
    assert link.ready.max_model_len == 256
    link.shutdown()
    link.join()


async def test_a_broken_loop_fails_every_stream_and_runs_the_exit_callbacks() -> None:
    client = AsyncLLMEngine.on_thread(echo_engine(FatalRunner(num_blocks=256)), "echo")
    exits: list[bool] = []
    client.on_exit(lambda: exits.append(True))
    running = client.generate([97, 98], FOREVER, "running")
    await anext(running)
    with pytest.raises(EngineShutdownError, match="loop failed"):
        await anext(client.generate([99], FOREVER, "fatal"))
    with pytest.raises(EngineShutdownError, match="loop failed"):
        async for _ in running:
            pass
    assert exits == [True]
    with pytest.raises(EngineShutdownError):
        await anext(client.generate([5, 6], FOREVER, "late"))
    await client.shutdown()  # still safe, and quick
