from inferplane.gateway.admission.auth import ApiKey, hash_key
from inferplane.gateway.admission.limits import RateLimiter, estimate_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(rpm: int | None = None, tpm: int | None = None, name: str = "alice") -> ApiKey:
    return ApiKey(
        name=name, key_hash=hash_key(name), requests_per_minute=rpm, tokens_per_minute=tpm
    )


def test_requests_per_minute_bursts_then_refuses_with_retry_after() -> None:
    clock = Clock()
    limiter, alice = RateLimiter(clock), key(rpm=3)
    assert all(limiter.admit(alice, 0).allowed for _ in range(3))
    refused = limiter.admit(alice, 0)
    assert not refused.allowed
    assert refused.refusal is not None
    assert (refused.refusal.status, refused.refusal.code) == (429, "rate_limit_exceeded")
    assert refused.headers()["Retry-After"] == "20"  # one request refills in 60/3 s
    clock.now += 20
    assert limiter.admit(alice, 0).allowed


def test_tokens_per_minute_and_remaining_headers() -> None:
    clock = Clock()
    limiter, alice = RateLimiter(clock), key(rpm=100, tpm=1000)
    first = limiter.admit(alice, 600)
    assert first.headers() == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
    }
    refused = limiter.admit(alice, 600)
    assert refused.refusal is not None
    assert "tokens per minute" in refused.refusal.message
    assert refused.refusal.retry_after_s == 12  # 200 tokens at 1000/min
    assert refused.remaining_requests == 99  # a refused request takes nothing


def test_settle_gives_back_what_was_not_used() -> None:
    clock = Clock()
    limiter, alice = RateLimiter(clock), key(tpm=1000)
    assert limiter.admit(alice, 900).allowed
    assert not limiter.admit(alice, 900).allowed
    limiter.settle(alice, estimated=900, actual=100)
    assert limiter.admit(alice, 900).allowed


def test_settle_charges_what_was_underestimated() -> None:
    clock = Clock()
    limiter, alice = RateLimiter(clock), key(tpm=1000)
    assert limiter.admit(alice, 100).allowed
    limiter.settle(alice, estimated=100, actual=1000)
    assert not limiter.admit(alice, 1).allowed


def test_a_request_bigger_than_the_bucket_runs_when_full_and_leaves_debt() -> None:
    clock = Clock()
    limiter, alice = RateLimiter(clock), key(tpm=1000)
    assert limiter.admit(alice, 3000).allowed
    refused = limiter.admit(alice, 10)
    assert refused.refusal is not None
    assert refused.refusal.retry_after_s == 121  # 2,010 tokens of debt at 1,000/min
    clock.now += 180
    assert limiter.admit(alice, 10).allowed


def test_keys_are_independent_and_unlimited_keys_pass() -> None:
    limiter = RateLimiter(Clock())
    assert limiter.admit(key(rpm=1), 0).allowed
    assert limiter.admit(key(rpm=1, name="bob"), 0).allowed
    unlimited = key(name="carol")
    assert all(limiter.admit(unlimited, 10**6).allowed for _ in range(100))
    assert limiter.admit(unlimited, 0).headers() == {}


def test_a_changed_limit_takes_effect() -> None:
    limiter = RateLimiter(Clock())
    assert limiter.admit(key(rpm=1), 0).allowed
    assert not limiter.admit(key(rpm=1), 0).allowed
    assert limiter.admit(key(rpm=5), 0).allowed


def test_token_estimate() -> None:
    assert estimate_tokens(prompt_chars=401, max_tokens=50) == 151
