import httpx

from inferplane.errors import error_body
from inferplane.server.errors import param_of


def test_param_of_names_the_client_field() -> None:
    assert param_of(("body", "messages", 0, "content", "str")) == "messages[0].content"
    assert param_of(("body", "stop", "list[str]", 1)) == "stop"
    assert param_of(("body",)) is None


def test_error_body_has_openai_shape() -> None:
    body = error_body(429, "slow down", code="queue_full")
    assert body == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "queue_full",
        }
    }


async def test_validation_error_is_400_naming_the_param(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions", json={"model": "tiny", "prompt": "x", "top_p": "high"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "top_p"


async def test_invalid_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] is None  # not the position of the bad character


async def test_unknown_route_and_method_use_the_error_body(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing")
    wrong_method = await client.get("/v1/completions")
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert "error" in missing.json()
    assert "error" in wrong_method.json()
