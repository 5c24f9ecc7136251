from inferplane.config.schema import ModelSpec
from inferplane.control.replicas import serve_args


def test_serve_args_carry_the_model_settings() -> None:
    model = ModelSpec(source="demo:small", version="7", dtype="bfloat16", max_model_len=2048)
    assert serve_args("chat", model, "256MiB") == (
        "demo:small",
        "--served-model-name",
        "chat",
        "--model-version",
        "7",
        "--dtype",
        "bfloat16",
        "--quantization",
        "none",
        "--task",
        "generate",
        "--kv-cache-memory",
        "256MiB",
        "--max-model-len",
        "2048",
    )


def test_a_stream_interval_other_than_one_is_passed_on() -> None:
    model = ModelSpec(source="demo:tiny", stream_interval=4)
    assert serve_args("chat", model, "64MiB")[-2:] == ("--stream-interval", "4")
