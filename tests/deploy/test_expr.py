"""Expressions render the same value in Python and as Helm template actions."""

from typing import Any

import helm_python as helm
import pytest
import yaml

from inferplane.deploy.expr import Context, File, Fmt, Namespace, helm_yaml, merge, resolve, v

VALUES: dict[str, Any] = {
    "image": {"repository": "inferplane", "tag": "0.1.0"},
    "pools": {"chat-primary": {"grace": 180, "on": True, "cache": {"emptyDir": {}}}},
    "ratio": 2.0,
}
TREE: dict[str, Any] = {
    "image": Fmt((v("image", "repository"), ":", v("image", "tag"))),
    "grace": v("pools", "chat-primary", "grace"),
    "flags": [Fmt((v("pools", "chat-primary", "on"),)), Fmt((v("ratio"), "%"))],
    "volume": merge({"name": "cache"}, v("pools", "chat-primary", "cache")),
    "namespace": Namespace(),
    "note": "{{ $labels.pool }} stays literal",
    "file": File("f.txt"),
}


def test_python_resolution() -> None:
    context = Context(VALUES, "serving", lambda name: f"text of {name}")
    assert resolve(TREE, context) == {
        "image": "inferplane:0.1.0",
        "grace": 180,
        "flags": ["true", "2%"],
        "volume": {"emptyDir": {}, "name": "cache"},
        "namespace": "serving",
        "note": "{{ $labels.pool }} stays literal",
        "file": "text of f.txt",
    }


def test_go_forms() -> None:
    assert v("image", "tag").go() == ".Values.image.tag"
    assert v("pools", "chat-primary", "grace").go() == '(index .Values.pools "chat-primary").grace'
    assert Fmt((v("ratio"), "%")).go() == 'printf "%v%%" .Values.ratio'


def test_helm_renders_the_same_tree(tmp_path: Any) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: t\nversion: 0.1.0\n")
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(VALUES))
    (tmp_path / "files" / "f.txt").write_text("text of f.txt")
    (tmp_path / "templates" / "t.yaml").write_text(helm_yaml(TREE))
    with helm.Chart.load(str(tmp_path)) as chart:
        (text,) = chart.render({}, name="t", namespace="serving").values()
    context = Context(VALUES, "serving", lambda name: (tmp_path / "files" / name).read_text())
    assert yaml.safe_load(text) == resolve(TREE, context)


@pytest.mark.parametrize("value", [True, 3, 2.5, "x"])
def test_formatting_matches_go(value: Any) -> None:
    context = Context({"x": value}, "", str)
    expected = {True: "true", 3: "3", 2.5: "2.5", "x": "x"}[value]
    assert resolve(Fmt((v("x"),)), context) == expected
