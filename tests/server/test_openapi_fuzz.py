"""Fuzz the API with schemathesis against the server's own OpenAPI document: whatever the
generated bodies, no answer is a 5xx. Bounded: a few examples per operation."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferplane.engine.compute.embedding import AsyncEmbeddingModel, EmbeddingModel
from inferplane.engine.front.async_engine import AsyncLLMEngine
from inferplane.server.app import create_app
from inferplane.server.state import ServerSettings, ServerState

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

MAX_EXAMPLES = 10


@pytest.fixture(scope="module")
def api_schema(engine: AsyncLLMEngine, minilm_dir: Path) -> Iterator[Any]:
    embedder = AsyncEmbeddingModel(EmbeddingModel.load(minilm_dir, device="cpu"))
    settings = ServerSettings(
        model_name="tiny", embedding_model_name="minilm", admin_key="fuzz-admin-key-not-guessable"
    )
    app = create_app(ServerState(settings, engine=engine, embedder=embedder))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,  # the same cases on every run: CI stays deterministic
    database=None,
)


@pytest.mark.timeout(240)
def test_no_server_errors(api_schema: Any) -> None:
    # Each operation's cases come from its own strategy; a plain loop rather than
    # schemathesis' pytest plugin keeps the test independent of pytest internals.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        _fuzz(operation)


def _fuzz(operation: Any) -> None:
    @SETTINGS  # type: ignore[untyped-decorator]
    @hypothesis.given(case=operation.as_strategy())  # type: ignore[untyped-decorator]
    def run(case: Any) -> None:
        _aim_at_served_models(case)
        response = case.call()
        assert response.status_code < 500, (case.path, case.body, response.text[:300])

    run()


def _aim_at_served_models(case: Any) -> None:
    """Random model names would only ever meet the 404; name a served one so generated
    bodies reach validation, the engine and the embedder."""
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        case.body["model"] = "minilm" if case.path.endswith("embeddings") else "tiny"
    _bound_generation(case)


MOST_TOKENS = 32


def _bound_generation(case: Any) -> None:
    """A body without a token limit generates to the end of the context (seconds on a busy
    CPU): the limit is capped, but a value of the wrong type is left for validation."""
    body = case.body
    if not isinstance(body, dict) or case.path.endswith(("embeddings", "predict")):
        return
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > MOST_TOKENS:
            body[field] = MOST_TOKENS
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
        body["max_tokens"] = MOST_TOKENS
