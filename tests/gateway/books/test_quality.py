"""The quality book: the confidence a replica reports in an answer's usage is read by the tap
and lands in the per-model-version histograms."""

import orjson
from prometheus_client import CollectorRegistry

from inferplane.gateway.books.quality import QualityBook
from inferplane.gateway.books.tap import ResponseTap, usage_of


async def _ignore(_message: object) -> None:
    return None


async def test_confidence_from_the_usage_reaches_the_histograms() -> None:
    confidence = {"mean_logprob": -1.25, "low_confidence_share": 0.5, "tokens": 3}
    usage = {"prompt_tokens": 5, "completion_tokens": 3, "confidence": confidence}
    tap = ResponseTap(_ignore, b"r1")
    await tap.send({"type": "http.response.start", "status": 200, "headers": []})
    await tap.send({"type": "http.response.body", "body": orjson.dumps({"usage": usage})})
    read = usage_of(tap, stream=False, est_prompt_tokens=0)
    assert read is not None and (read.mean_logprob, read.low_confidence_share) == (-1.25, 0.5)
    registry = CollectorRegistry()
    book = QualityBook(registry)
    book.answered("chat", "v1", "main", read)
    labels = {"model": "chat", "model_version": "v1"}
    total = registry.get_sample_value("inference_completion_negative_mean_logprob_sum", labels)
    share = registry.get_sample_value("inference_completion_low_confidence_share_count", labels)
    assert (total, share) == (1.25, 1.0)
    assert book.reading("main").scored == 1
