"""`inferplane generate MODEL PROMPT`: one offline generation, streamed or as JSON.

Runs the engine in-process (no server): load the model, tokenize (optionally through the
chat template), step the engine until the request finishes, and print the text as it comes,
or with --json one object with the text, token ids, finish reason, usage and timings.
"""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, cast, get_args

import typer

from inferplane.engine.core.config import DTypeName, EngineConfig, QuantName
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.outputs import RequestOutput
from inferplane.engine.core.sampling_params import InvalidParameterError, SamplingParams
from inferplane.engine.core.tokenizer import ChatTemplateError, Tokenizer
from inferplane.sources import SourceError, resolve_source

Clock = Callable[[], float]
_DEFAULTS = SamplingParams()
_MAX_STEPS = 1_000_000  # a bound on the step loop; far above any max_tokens

app = typer.Typer(help="Generate text offline with the built-in engine.")


@dataclass
class Generation:
    """What one finished request produced, with its timings in seconds."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    final: RequestOutput | None = None
    load_s: float = 0.0
    first_token_s: float | None = None
    total_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        final = self.final
        prompt = final.prompt_tokens if final else 0
        completion = len(self.token_ids)
        decode_s = self.total_s - (self.first_token_s or 0.0)
        return {
            "text": self.text,
            "tokens": self.token_ids,
            "finish_reason": final.finish_reason if final else None,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "cached_prompt_tokens": final.cached_prompt_tokens if final else 0,
            },
            "timings": {
                "load_s": round(self.load_s, 4),
                "ttft_s": None if self.first_token_s is None else round(self.first_token_s, 4),
                "total_s": round(self.total_s, 4),
                "decode_tokens_per_s": _rate(completion - 1, decode_s),
            },
        }


def _rate(tokens: int, seconds: float) -> float | None:
    return round(tokens / seconds, 2) if tokens > 0 and seconds > 0 else None


def build_engine(config: EngineConfig) -> tuple[LLMEngine, Tokenizer]:
    """The engine (with the model's tokenizer for text output) and that tokenizer."""
    from inferplane.engine.compute.runner import TorchModelRunner  # noqa: PLC0415 (torch: load on use)

    tokenizer = Tokenizer.from_dir(resolve_source(config.model))
    runner = TorchModelRunner.from_config(config)
    return LLMEngine(config, runner, tokenizer), tokenizer


def prompt_ids(tokenizer: Tokenizer, prompt: str, chat: bool, system: str | None) -> list[int]:
    if not chat:
        return tokenizer.encode(prompt)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return tokenizer.encode_chat(messages)


def run_generation(
    engine: LLMEngine,
    ids: list[int],
    params: SamplingParams,
    clock: Clock,
    on_text: Callable[[str], None] = lambda _: None,
) -> Generation:
    """Step the engine until the one request finishes; `on_text` sees each text piece."""
    result, started = Generation(), clock()
    engine.add_request("generate-0", ids, params)
    for _ in range(_MAX_STEPS):
        if not engine.has_unfinished():
            break
        for update in engine.step():
            if result.first_token_s is None and update.new_tokens:
                result.first_token_s = clock() - started
            result.token_ids.extend(token.token_id for token in update.new_tokens)
            result.text += update.text
            on_text(update.text)
            result.final = update if update.finished else result.final
    result.total_s = clock() - started
    return result


@app.command("generate")
def generate(  # noqa: PLR0917 (a typer command: one parameter per flag)
    model: Annotated[
        str, typer.Argument(help="A model directory, demo:tiny, package:NAME, gguf:PATH ...")
    ],
    prompt: Annotated[str, typer.Argument(help="The prompt text (or the user message).")],
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate at most.")] = 64,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = _DEFAULTS.temperature,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = _DEFAULTS.top_p,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")] = None,
    chat: Annotated[bool, typer.Option(help="Wrap the prompt in the chat template.")] = False,
    system: Annotated[str | None, typer.Option(help="A system message (with --chat).")] = None,
    ignore_eos: Annotated[bool, typer.Option(help="Keep going past end-of-sequence.")] = False,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")] = "auto",
    quantization: Annotated[str, typer.Option(help="none, int8 or q4_0 (weight-only).")] = "none",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Generate a completion for PROMPT with MODEL, in this process."""
    params = _params(max_tokens, temperature, top_p, seed, ignore_eos)
    clock = time.perf_counter
    started = clock()
    engine, tokenizer = _load(_engine_config(model, dtype, quantization, device, seed))
    load_s = clock() - started
    ids = _encode(engine, tokenizer, prompt, chat, system)
    stream = None if as_json else (lambda text: typer.echo(text, nl=False))
    result = run_generation(engine, ids, params, clock, stream or (lambda _: None))
    result.load_s = load_s
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        typer.echo("")


def _params(
    max_tokens: int, temperature: float, top_p: float, seed: int | None, ignore_eos: bool
) -> SamplingParams:
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            ignore_eos=ignore_eos,
        )
    except InvalidParameterError as error:
        option = "--" + error.param.replace("_", "-")
        raise typer.BadParameter(error.message, param_hint=option) from error


def _engine_config(
    model: str, dtype: str, quantization: str, device: str, seed: int | None
) -> EngineConfig:
    for value, names, option in (
        (dtype, get_args(DTypeName), "--dtype"),
        (quantization, get_args(QuantName), "--quantization"),
    ):
        if value not in names:
            raise typer.BadParameter(f"use one of {', '.join(names)}", param_hint=option)
    return EngineConfig(
        model=model,
        dtype=cast(DTypeName, dtype),
        quantization=cast(QuantName, quantization),
        device=device,
        seed=seed or 0,
    )


def _load(config: EngineConfig) -> tuple[LLMEngine, Tokenizer]:
    try:
        return build_engine(config)
    except (SourceError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def _encode(
    engine: LLMEngine, tokenizer: Tokenizer, prompt: str, chat: bool, system: str | None
) -> list[int]:
    try:
        ids = prompt_ids(tokenizer, prompt, chat, system)
        engine.validate(ids)
    except (ChatTemplateError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    return ids
