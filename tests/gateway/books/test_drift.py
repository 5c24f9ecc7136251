"""The drift sampler: every n-th prompt is kept (an append on the request path), scored in the
background per model version, and published as inference_input_drift_score; prompt text comes
from a chat's last user message or a completion's prompt."""

import orjson
from prometheus_client import CollectorRegistry

from inferplane.gateway.books.drift import DriftSampler, prompt_text
from inferplane.telemetry.quality.monitor import DriftSettings


def _chat(text: str) -> bytes:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    return orjson.dumps({"model": "chat", "messages": messages})


def test_prompt_text() -> None:
    assert prompt_text(_chat("hello")) == "hello"
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}]}
    assert prompt_text(orjson.dumps(parts)) == "a"
    assert prompt_text(b'{"prompt": "once"}') == "once" and prompt_text(b"nope") == ""


async def test_sampled_prompts_are_scored_per_version_in_the_background() -> None:
    registry = CollectorRegistry()
    settings = DriftSettings(reference_size=20, live_size=20, min_live=10)
    sampler = DriftSampler(registry, None, settings, every=2)
    for index in range(80):
        text = f"Tell me about the lighthouse number {index}" if index < 40 else f"Маяк {index}"
        sampler.sample("chat", "v1", _chat(text))
    assert await sampler.drain() == 40  # one in two
    labels = {"model": "chat", "model_version": "v1", "signal": "script"}
    assert (registry.get_sample_value("inference_input_drift_score", labels) or 0) > 1
    embedding = {**labels, "signal": "embedding"}
    assert registry.get_sample_value("inference_input_drift_score", embedding) is None
