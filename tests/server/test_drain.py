import asyncio

from inferplane.server.drain import DrainState


async def test_wait_idle_returns_when_the_last_request_leaves() -> None:
    drain = DrainState()
    drain.enter()
    drain.start_draining()
    asyncio.get_running_loop().call_later(0.05, drain.leave)
    assert await drain.wait_idle(2.0) is True
    assert drain.in_flight == 0


async def test_wait_idle_gives_up_at_the_deadline() -> None:
    drain = DrainState()
    drain.enter()
    assert await drain.wait_idle(0.05) is False


def test_draining_is_sticky_and_timed_by_the_clock() -> None:
    ticks = iter([10.0, 20.0])
    drain = DrainState(clock=lambda: next(ticks))
    assert not drain.draining
    drain.start_draining()
    drain.start_draining()
    assert drain.draining
