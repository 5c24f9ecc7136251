"""The OpenAI wire protocol the server accepts: request bodies as pydantic models.

Strict on types (a string where a number belongs is a 400 naming the field), lenient on
unknown keys: OpenAI clients send fields this server does not use, and those are ignored.
Two asks are refused rather than ignored, because ignoring them hands back something the client
did not ask for: output constrained to JSON (`response_format` other than text) and tool calls
(`tool_choice` other than "none"; tools sent without it are ignored, as vLLM does). Content
parts other than text (images, audio) are refused naming the part's type.
Responses are plain dicts built in the route modules, shaped as OpenAI returns them.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class _Lenient(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class StreamOptions(_Lenient):
    include_usage: bool = False


def _text_only(refusal: str) -> Any:
    """A validator for a `type` field that only "text" passes; `refusal` says why, with
    {kind} for the type sent."""

    def check(kind: str) -> str:
        if kind != "text":
            raise PydanticCustomError("unsupported_value", refusal, {"kind": kind})
        return kind

    return field_validator("type")(check)


class TextPart(_Lenient):
    type: str
    text: str = ""

    _text = _text_only("this server takes text content only, not '{kind}' parts")


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: list[TextPart] | str | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


NonNegInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]


class SamplingFields(_Lenient):
    """Fields shared by chat and completions, with vLLM's extras (top_k, min_p, ...)."""

    model: str
    max_tokens: PositiveInt | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: Annotated[int, Field(ge=1, le=16)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    user: str | None = None
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    stop_token_ids: list[NonNegInt] | None = None

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ResponseFormat(_Lenient):
    type: str

    _text = _text_only(
        "'{kind}' is not supported: this server does not constrain its output to JSON"
    )


def _no_tool_calls(choice: object) -> object:
    if choice not in (None, "none"):
        raise PydanticCustomError(
            "unsupported_tools",
            "tool calling is not supported by this server: send tool_choice 'none' or no tools",
        )
    return choice


class ChatCompletionRequest(SamplingFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    tool_choice: Any = None

    _tool_choice = field_validator("tool_choice")(_no_tool_calls)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


Prompt = str | list[str] | list[NonNegInt] | list[list[NonNegInt]]


class CompletionRequest(SamplingFields):
    prompt: Prompt
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool = False


class EmbeddingRequest(_Lenient):
    model: str
    input: str | list[str] | list[NonNegInt] | list[list[NonNegInt]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = None
    user: str | None = None

    def inputs(self) -> list[str | list[int]]:
        """One entry per input, whichever of OpenAI's four input forms was sent."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and all(isinstance(item, int) for item in self.input):
            return [[int(item) for item in self.input]]  # type: ignore[arg-type]
        return list(self.input)  # type: ignore[arg-type]


class PredictRequest(_Lenient):
    """The simple form: one prompt in, one text out."""

    prompt: str
    max_tokens: PositiveInt = 16
    model: str | None = None
    temperature: float = 0.0


class DrainRequest(_Lenient):
    timeout_s: Annotated[float, Field(gt=0)] | None = None


def model_card(name: str, created: int, max_model_len: int | None) -> dict[str, Any]:
    card: dict[str, Any] = {"id": name, "object": "model", "created": created}
    card["owned_by"] = "inferplane"
    if max_model_len is not None:
        card["max_model_len"] = max_model_len
    return card
