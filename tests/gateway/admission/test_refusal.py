from inferplane.gateway.admission.refusal import (
    bad_request,
    forbidden,
    model_not_found,
    rate_limited,
    unauthenticated,
)


def test_openai_error_bodies() -> None:
    body = unauthenticated("no key").body()
    assert body == {
        "error": {
            "message": "no key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert forbidden("no").status == 403
    assert forbidden("no").body()["error"]["code"] == "permission_denied"
    assert bad_request("bad", param="x").body()["error"]["param"] == "x"


def test_retry_after_only_when_waiting_helps() -> None:
    limited = rate_limited("slow down", 7)
    assert (limited.status, limited.code) == (429, "rate_limit_exceeded")
    assert limited.headers() == {"Retry-After": "7"}
    assert forbidden("no").headers() == {}


def test_unknown_model_lists_what_is_served() -> None:
    refusal = model_not_found("gpt-9", ["b", "a"])
    assert (refusal.status, refusal.code, refusal.param) == (404, "model_not_found", "model")
    assert "a, b" in refusal.message
