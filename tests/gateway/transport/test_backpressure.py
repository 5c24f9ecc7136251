"""The gateway's protocol (coalescing writes) keeps the shared stall cut-off and slow-reader
grace of inferplane.http.backpressure (tested there on the plain protocol)."""

from inferplane.gateway.transport.coalesce import CoalescingHttpToolsProtocol
from inferplane.http.backpressure import StreamLimits
from tests.http.test_backpressure import (
    LIMITS,
    assert_a_silent_reader_is_cut_off,
    assert_a_slow_reader_is_kept,
)


async def test_a_client_that_reads_nothing_is_cut_off_by_the_gateway() -> None:
    await assert_a_silent_reader_is_cut_off(CoalescingHttpToolsProtocol.with_limits(LIMITS))


async def test_a_client_that_reads_slowly_is_kept_by_the_gateway() -> None:
    await assert_a_slow_reader_is_kept(CoalescingHttpToolsProtocol.with_limits(LIMITS))


def test_the_gateways_protocol_takes_limits_as_a_subclass() -> None:
    protocol = CoalescingHttpToolsProtocol.with_limits(LIMITS)
    assert issubclass(protocol, CoalescingHttpToolsProtocol) and protocol.limits == LIMITS
    assert CoalescingHttpToolsProtocol.limits == StreamLimits()
