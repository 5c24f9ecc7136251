"""The gateway's protocol (coalescing writes) keeps the shared stall cut-off and slow-reader
grace of inferplane.http.backpressure (tested there on the plain protocol)."""

import asyncio

from inferplane.gateway.transport.coalesce import CoalescingHttpToolsProtocol
from inferplane.http.backpressure import StreamLimits
from tests.http.test_backpressure import LIMITS, Endless, open_stream, serving


async def test_a_client_that_reads_nothing_is_cut_off_by_the_gateway() -> None:
    app = Endless()
    async with serving(app, CoalescingHttpToolsProtocol.with_limits(LIMITS)) as port:
        client = await open_stream(port)
        await asyncio.wait_for(app.gone.wait(), timeout=5)
        client.close()


async def test_a_client_that_reads_slowly_is_kept_by_the_gateway() -> None:
    app = Endless()
    async with serving(app, CoalescingHttpToolsProtocol.with_limits(LIMITS)) as port:
        client = await open_stream(port)
        loop = asyncio.get_running_loop()
        for _ in range(20):  # 2 s: four stall timeouts, a little read in each
            await asyncio.sleep(0.1)
            assert await loop.sock_recv(client, 8192)
        assert not app.gone.is_set()
        client.close()
        await asyncio.wait_for(app.gone.wait(), timeout=5)


def test_the_gateways_protocol_takes_limits_as_a_subclass() -> None:
    protocol = CoalescingHttpToolsProtocol.with_limits(LIMITS)
    assert issubclass(protocol, CoalescingHttpToolsProtocol) and protocol.limits == LIMITS
    assert CoalescingHttpToolsProtocol.limits == StreamLimits()
