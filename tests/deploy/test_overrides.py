"""--set for the manifests mode: dotted paths, YAML values, checked like values.schema.json."""

import pytest

from inferplane.deploy.overrides import apply_sets, checked, parse_set


def test_parse() -> None:
    assert parse_set("image.tag=0.2.0") == (["image", "tag"], "0.2.0")
    assert parse_set("keda.enabled=true") == (["keda", "enabled"], True)
    assert parse_set(r"pools.chat\.rollout.maxUnavailable=2") == (
        ["pools", "chat.rollout", "maxUnavailable"], 2)  # fmt: skip
    assert parse_set("admin.key=") == (["admin", "key"], "")
    for bad in ("image.tag", "=3", "a..b=1"):
        with pytest.raises(ValueError, match="--set"):
            parse_set(bad)


def test_apply_copies_and_nests() -> None:
    values = {"image": {"tag": "1"}}
    assert apply_sets(values, ["image.tag=2", "monitoring.labels.release=kps"]) == {
        "image": {"tag": 2},
        "monitoring": {"labels": {"release": "kps"}},
    }
    assert values == {"image": {"tag": "1"}}
    with pytest.raises(ValueError, match="not a map"):
        apply_sets(values, ["image.tag.x=1"])


def test_checked_refuses_unknown_keys_pools_and_bad_types() -> None:
    assert checked({"pools": {"chat": {}}}, ["chat"])
    with pytest.raises(ValueError, match="unknown pool 'other'"):
        checked({"pools": {"other": {}}}, ["chat"])
    with pytest.raises(ValueError, match="imageTag"):
        checked({"imageTag": "x"}, [])
    with pytest.raises(ValueError, match="pullPolicy"):
        checked({"image": {"pullPolicy": "Sometimes"}}, [])
