"""`inferplane keys ...`: create, list and revoke API keys in a keys file (hashes only)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from inferplane.gateway.admission.auth import (
    ApiKey,
    KeysFile,
    KeysFileError,
    hash_key,
    load_keys,
    new_secret,
    save_keys,
)

app = typer.Typer(help="API keys for the gateway.", no_args_is_help=True)

KeysPath = Annotated[Path, typer.Option("--keys-file", help="The keys file (YAML).")]


def _load(path: Path) -> KeysFile:
    try:
        return load_keys(path)
    except KeysFileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


@app.command("create")
def create(  # noqa: PLR0917 (a typer command: one parameter per flag)
    name: Annotated[str, typer.Option(help="A unique name for the key (shown in reports).")],
    team: Annotated[str, typer.Option(help="Team the key's spend is billed to.")] = "default",
    tier: Annotated[str, typer.Option(help="Tier that routing rules match.")] = "standard",
    model: Annotated[
        list[str] | None, typer.Option(help="Allowed model or pattern (repeat); default all.")
    ] = None,
    admin: Annotated[bool, typer.Option(help="May override routes and use every model.")] = False,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.", min=1)] = None,
    keys_file: KeysPath = Path("keys.yaml"),
) -> None:
    """Create a key: prints it once; the file keeps only its hash."""
    keys = _load(keys_file)
    if any(key.name == name for key in keys.keys):
        typer.echo(f"error: a key named {name!r} exists in {keys_file}; pick another", err=True)
        raise typer.Exit(1)
    secret = new_secret()
    entry = ApiKey(
        name=name,
        key_hash=hash_key(secret),
        team=team,
        tier=tier,
        models=tuple(model or ("*",)),
        admin=admin,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
    )
    save_keys(keys_file, keys.model_copy(update={"keys": (*keys.keys, entry)}))
    typer.echo(secret)
    typer.echo(f"created key {name!r} in {keys_file}; it is shown only now, store it", err=True)


@app.command("list")
def list_keys(keys_file: KeysPath = Path("keys.yaml")) -> None:
    """List keys (never the secrets: they are not stored)."""
    table = Table("name", "team", "tier", "models", "admin", "req/min", "tokens/min", "hash")
    for key in _load(keys_file).keys:
        table.add_row(
            key.name,
            key.team,
            key.tier,
            ",".join(key.models),
            "yes" if key.admin else "",
            _limit(key.requests_per_minute),
            _limit(key.tokens_per_minute),
            key.key_hash[:19] + "...",
        )
    Console(width=160).print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Option(help="The key to remove.")],
    keys_file: KeysPath = Path("keys.yaml"),
) -> None:
    """Remove a key; requests with it get 401 once the gateway reloads the file."""
    keys = _load(keys_file)
    kept = tuple(key for key in keys.keys if key.name != name)
    if len(kept) == len(keys.keys):
        typer.echo(f"error: no key named {name!r} in {keys_file}", err=True)
        raise typer.Exit(1)
    save_keys(keys_file, keys.model_copy(update={"keys": kept}))
    typer.echo(f"revoked {name!r}")


def _limit(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
