from inferplane.gateway.routing.balancer.predicted_work import PredictedWork
from inferplane.gateway.types import RouteRequest
from tests.gateway.routing.balancer.fleet import REQUEST, replica


def test_counts_owed_tokens_not_requests() -> None:
    few_long = replica("few-long", in_flight=1, outstanding_work=8000)
    many_short = replica("many-short", in_flight=6, outstanding_work=600)
    assert PredictedWork().select(REQUEST, [few_long, many_short]) == "many-short"


def test_a_big_request_prefers_the_bigger_replica() -> None:
    small = replica("small", outstanding_work=1000)
    big = replica("big", outstanding_work=1800, weight=2.0)
    request = RouteRequest(model="chat-small", est_prompt_tokens=1500, max_tokens=500)
    # small: (1000 + 2000) / 1 = 3000; big: (1800 + 2000) / 2 = 1900
    assert PredictedWork().select(request, [small, big]) == "big"


def test_ties_go_to_fewer_requests_and_unroutable_is_skipped() -> None:
    fleet = [replica("a", in_flight=2), replica("b", in_flight=1), replica("c", state="failed")]
    assert PredictedWork().select(REQUEST, fleet) == "b"
