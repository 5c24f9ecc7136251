from pathlib import Path

import typer
from typer.testing import CliRunner

from inferplane.cli import keys_cmd
from inferplane.gateway.admission.auth import ApiKey, KeyStore, load_keys

runner = CliRunner()


def _app() -> typer.Typer:
    # Mounted as the lead's app does, so the command line reads `keys create ...`.
    root = typer.Typer()
    root.add_typer(keys_cmd.app, name="keys")
    return root


def _create(path: Path, *args: str) -> str:
    result = runner.invoke(_app(), ["keys", "create", "--keys-file", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_create_prints_the_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    secret = _create(
        path,
        "--name",
        "alice",
        "--team",
        "research",
        "--tier",
        "premium",
        "--model",
        "chat-*",
        "--model",
        "minilm",
        "--rpm",
        "60",
        "--tpm",
        "9000",
    )
    assert secret.startswith("ip-")
    assert secret not in path.read_text()
    key = KeyStore.from_file(path).authenticate(secret)
    assert isinstance(key, ApiKey)
    assert (key.name, key.team, key.tier, key.models) == (
        "alice",
        "research",
        "premium",
        ("chat-*", "minilm"),
    )
    assert (key.requests_per_minute, key.tokens_per_minute, key.admin) == (60, 9000, False)


def test_second_key_appends_and_names_stay_unique(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    _create(path, "--name", "a")
    _create(path, "--name", "b", "--admin")
    assert [k.name for k in load_keys(path).keys] == ["a", "b"]
    again = runner.invoke(_app(), ["keys", "create", "--keys-file", str(path), "--name", "a"])
    assert again.exit_code == 1
    assert "exists" in again.output


def test_list_shows_keys_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    secret = _create(path, "--name", "ops", "--admin", "--rpm", "1200")
    result = runner.invoke(_app(), ["keys", "list", "--keys-file", str(path)])
    assert result.exit_code == 0
    assert "ops" in result.output
    assert "1,200" in result.output
    assert secret not in result.output


def test_revoke_removes_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    secret = _create(path, "--name", "gone")
    result = runner.invoke(_app(), ["keys", "revoke", "--keys-file", str(path), "--name", "gone"])
    assert result.exit_code == 0
    assert not isinstance(KeyStore.from_file(path).authenticate(secret), ApiKey)
    missing = runner.invoke(_app(), ["keys", "revoke", "--keys-file", str(path), "--name", "x"])
    assert missing.exit_code == 1


def test_a_broken_keys_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys: [{name: a, key_hash: plaintext}]\n")
    result = runner.invoke(_app(), ["keys", "list", "--keys-file", str(path)])
    assert result.exit_code == 1
    assert "not a valid keys file" in result.output
