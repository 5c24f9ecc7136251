import pytest
import typer

from inferplane.cli.serve_cmd import parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MiB", 512 * 2**20), ("2GiB", 2 * 2**30), ("1000", 1000), ("1.5 KB", 1500)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_rejects_nonsense() -> None:
    with pytest.raises(typer.BadParameter, match="512MiB"):
        parse_size("lots")
