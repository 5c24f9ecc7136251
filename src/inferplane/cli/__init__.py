"""The `inferplane` command line (typer + rich)."""
