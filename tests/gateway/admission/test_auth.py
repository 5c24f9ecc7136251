import stat
from pathlib import Path

import pytest

from inferplane.gateway.admission.auth import (
    ANONYMOUS,
    ApiKey,
    KeyBudget,
    KeysFile,
    KeysFileError,
    KeyStore,
    bearer_token,
    hash_key,
    load_keys,
    new_secret,
    parse_keys,
    save_keys,
)
from inferplane.gateway.admission.refusal import Refusal

SECRET = "ip-test-secret-alice"
ALICE = ApiKey(name="alice", key_hash=hash_key(SECRET), team="research", models=("chat-*",))


def store() -> KeyStore:
    return KeyStore([ALICE, ApiKey(name="root", key_hash=hash_key("ip-root"), admin=True)])


def test_a_valid_key_authenticates() -> None:
    assert store().authenticate(SECRET) == ALICE


@pytest.mark.parametrize("token", [None, "", "ip-wrong", SECRET + " "])
def test_missing_or_wrong_keys_are_401(token: str | None) -> None:
    refused = store().authenticate(token)
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.code) == (401, "invalid_api_key")
    assert SECRET not in refused.message


def test_models_are_authorized_by_pattern_and_admin_sees_all() -> None:
    assert KeyStore.authorize(ALICE, "chat-small") is None
    refused = KeyStore.authorize(ALICE, "minilm")
    assert refused is not None
    assert (refused.status, refused.code) == (403, "permission_denied")
    assert "chat-*" in refused.message
    root = store().authenticate("ip-root")
    assert isinstance(root, ApiKey)
    assert KeyStore.authorize(root, "minilm") is None


def test_dev_mode_lets_everyone_in_as_the_anonymous_admin() -> None:
    dev = KeyStore.from_file(None)
    assert dev.dev_mode
    assert dev.authenticate(None) is ANONYMOUS
    assert KeyStore.authorize(ANONYMOUS, "anything") is None


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer ip-abc") == "ip-abc"
    assert bearer_token("bearer   ip-abc ") == "ip-abc"
    assert bearer_token("Basic xyz") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_secrets_are_fresh_and_only_hashes_are_kept() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert first.startswith("ip-")
    assert len(first) > 40
    assert hash_key(first).startswith("sha256:")
    assert len(hash_key(first)) == len("sha256:") + 64


def test_keys_file_round_trip_with_budgets(tmp_path: Path) -> None:
    keys = KeysFile(
        keys=(ALICE.model_copy(update={"budget": KeyBudget(period="day", hard_usd=5.0)}),),
        team_budgets={"research": KeyBudget(soft_usd=400, hard_usd=500)},
    )
    path = tmp_path / "keys.yaml"
    save_keys(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET not in path.read_text()
    assert load_keys(path) == keys
    budgets = {(b.scope, b.name, b.period, b.hard_usd) for b in load_keys(path).budgets()}
    assert budgets == {("key", "alice", "day", 5.0), ("team", "research", "month", 500.0)}
    assert len(KeyStore.from_file(path)) == 1


def test_a_missing_file_has_no_keys(tmp_path: Path) -> None:
    missing = KeyStore.from_file(tmp_path / "none.yaml")
    assert not missing.dev_mode
    assert isinstance(missing.authenticate(SECRET), Refusal)


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        ("keys: [{name: a, key_hash: plain}]", "keys[0].key_hash"),
        ("keys: [{name: a, key_hash: 'sha256:" + "0" * 64 + "', colour: red}]", "colour"),
        ("keys: [{name: a, key_hash: 'sha256:" + "1" * 64 + "', requests_per_minute: 0}]", "0"),
        ("- just a list", "mapping"),
        ("keys: [", "invalid YAML"),
    ],
)
def test_bad_keys_files_say_where(text: str, advice: str) -> None:
    with pytest.raises(KeysFileError, match="not a valid keys file") as raised:
        parse_keys(text, source="keys.yaml")
    assert advice in str(raised.value)


def test_names_and_hashes_must_be_unique() -> None:
    other = "sha256:" + "2" * 64
    twice = f"keys: [{{name: a, key_hash: '{ALICE.key_hash}'}}, {{name: a, key_hash: '{other}'}}]"
    with pytest.raises(KeysFileError, match="repeated"):
        parse_keys(twice)


def test_the_example_keys_file_loads() -> None:
    example = load_keys(Path(__file__).parents[3] / "examples" / "keys.yaml")
    assert [key.name for key in example.keys] == ["admin", "support-bot", "research-notebook"]
    assert example.keys[1].allows_model("chat-small")
    assert not example.keys[1].allows_model("minilm")
    assert len(example.budgets()) == 2
