import pytest
from pydantic import ValidationError

from inferplane.server.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest


def test_unknown_fields_are_ignored() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "extra": 1}],
        "parallel_tool_calls": False,
        "metadata": {"a": "b"},
    }
    request = ChatCompletionRequest.model_validate(body)
    assert request.messages[0].text() == "hi"


def test_types_are_strict() -> None:
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": "x", "max_tokens": "5"})
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": "x", "n": 0})


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "max_completion_tokens": 5,
    }
    assert ChatCompletionRequest.model_validate(body).token_limit() == 5


def test_content_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    assert ChatCompletionRequest.model_validate(body).messages[0].text() == "ab"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("a", ["a"]), (["a", "b"], ["a", "b"]), ([1, 2], [[1, 2]]), ([[1], [2, 3]], [[1], [2, 3]])],
)
def test_embedding_input_forms(given: object, expected: list[object]) -> None:
    assert EmbeddingRequest.model_validate({"model": "m", "input": given}).inputs() == expected


def test_stop_accepts_one_or_many() -> None:
    one = CompletionRequest.model_validate({"model": "m", "prompt": "x", "stop": "\n"})
    many = CompletionRequest.model_validate({"model": "m", "prompt": "x", "stop": ["a", "b"]})
    assert one.stop_list() == ("\n",)
    assert many.stop_list() == ("a", "b")
