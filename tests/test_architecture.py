"""The import directions of docs/architecture.md, held over the AST of src/inferplane.

Each rule is also run once on a small tree that breaks it, so a rule that could never fail
fails here first."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.import_rules import Graph, Rule, cycles, import_graph, impure, within

SRC = Path(__file__).resolve().parents[1] / "src"
GRAPH = import_graph(SRC)

# Below the rest: imports nothing else of inferplane.
LEAVES = ("inferplane.config", "inferplane.sources", "inferplane.errors", "inferplane.http")
LAYERS = (
    Rule("inferplane.config", ("inferplane.config",)),
    Rule("inferplane.sources", ("inferplane.sources",)),
    Rule("inferplane.engine.core", ("inferplane.engine.core",)),
    Rule(
        "inferplane.engine.compute",
        ("inferplane.engine.core", "inferplane.engine.compute", "inferplane.sources"),
    ),
    Rule("inferplane.engine", ("inferplane.engine", "inferplane.sources")),
    Rule("inferplane.telemetry", ("inferplane.telemetry", "inferplane.config")),
    Rule("inferplane.ledger", ("inferplane.ledger", "inferplane.config", "inferplane.telemetry")),
    Rule("inferplane.planner", ("inferplane.planner", "inferplane.ledger.pricing")),
    Rule(
        "inferplane.server",
        (
            "inferplane.server",
            "inferplane.engine",
            "inferplane.sources",
            "inferplane.telemetry",
            "inferplane.errors",
            "inferplane.http",
        ),
    ),
    Rule(
        "inferplane.gateway",
        (
            "inferplane.gateway",
            "inferplane.config",
            "inferplane.ledger",
            "inferplane.telemetry",
            "inferplane.errors",
            "inferplane.http",
        ),
    ),
    # Inside the gateway: transport < admission < routing; books beside routing; the modules
    # at gateway/'s top (access, app, proxy, state, builder, serve) put them together.
    Rule(
        "inferplane.gateway.transport",
        ("inferplane.gateway.transport", "inferplane.gateway.types", "inferplane.gateway.errors"),
        "inferplane.gateway",
    ),
    Rule(
        "inferplane.gateway.admission",
        ("inferplane.gateway.admission", "inferplane.gateway.errors"),
        "inferplane.gateway",
    ),
    Rule(
        "inferplane.gateway.routing",
        (
            "inferplane.gateway.routing",
            "inferplane.gateway.admission",
            "inferplane.gateway.transport",
            "inferplane.gateway.types",
        ),
        "inferplane.gateway",
    ),
    Rule(
        "inferplane.gateway.books",
        (
            "inferplane.gateway.books",
            "inferplane.gateway.admission",
            "inferplane.gateway.transport",
        ),
        "inferplane.gateway",
    ),
    Rule(
        "inferplane.control",
        (
            "inferplane.control",
            "inferplane.config",
            "inferplane.gateway",
            "inferplane.ledger",
            "inferplane.planner",
            "inferplane.sources",
            "inferplane.telemetry",
        ),
    ),
    Rule(
        "inferplane.sim",
        (
            "inferplane.sim",
            "inferplane.config",
            "inferplane.control",
            "inferplane.engine.core",
            "inferplane.gateway",
            "inferplane.ledger",
            "inferplane.planner",
        ),
    ),
)
# Pure decisions: no I/O, no clock read, no web types, no torch, in anything they reach.
PURE = (
    "inferplane.gateway.routing.balancer",
    "inferplane.control.autoscaler",
    "inferplane.planner",
)
IMPURE = (
    "asyncio",
    "socket",
    "http",
    "urllib",
    "subprocess",
    "threading",
    "multiprocessing",
    "time",
    "httpx",
    "aiohttp",
    "uvicorn",
    "starlette",
    "fastapi",
    "torch",
    "sqlalchemy",
    "psycopg",
    "prometheus_client",
    "inferplane.telemetry",
    "inferplane.gateway.transport",
    "inferplane.gateway.state",
    "inferplane.ledger.store",
)
# Load without torch: the simulator and the platform processes run where torch never loads,
# and every command of the CLI starts without it (only serve and generate load it, when run).
TORCH_FREE = (
    "inferplane.cli",
    "inferplane.engine.core",
    "inferplane.gateway",
    "inferplane.control",
    "inferplane.sim",
    "inferplane.planner",
    "inferplane.ledger",
    "inferplane.config",
)


def _modules(graph: Graph, package: str) -> list[str]:
    return sorted(m for m in graph if within(m, package))


def test_the_graph_sees_every_package() -> None:
    packages = {m.split(".")[1] for m in GRAPH if m.count(".") >= 1}
    assert {"engine", "gateway", "control", "sim", "server", "cli", "config"} <= packages
    assert "inferplane.engine.core.scheduler" in GRAPH["inferplane.sim.replica"]


def test_no_import_cycles() -> None:
    assert cycles(GRAPH, "inferplane") == []


@pytest.mark.parametrize("rule", LAYERS, ids=lambda rule: rule.package)
def test_import_directions(rule: Rule) -> None:
    assert rule.violations(GRAPH) == []


def test_leaves_import_nothing_else() -> None:
    for leaf in LEAVES:
        assert Rule(leaf, (leaf,)).violations(GRAPH) == []


def test_nothing_imports_the_cli() -> None:
    users = {m for m, targets in GRAPH.items() if any(within(t, "inferplane.cli") for t in targets)}
    assert {m for m in users if not within(m, "inferplane.cli")} == {"inferplane.__main__"}


def test_pure_decisions_stay_pure() -> None:
    assert impure(GRAPH, _pure_starts(GRAPH), IMPURE) == []


def _pure_starts(graph: Graph) -> list[str]:
    return [m for package in PURE for m in _modules(graph, package)]


def test_torch_free_modules_load_without_torch() -> None:
    modules = [
        m for package in TORCH_FREE for m in _modules(GRAPH, package) if not m.endswith("__main__")
    ]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == []


# The rules fail when broken: each one over a small graph that breaks it.


def _graph(**edges: tuple[str, ...]) -> Graph:
    named = {k.replace("__", "."): frozenset(v) for k, v in edges.items()}
    return {**{t: frozenset() for v in named.values() for t in v}, **named}


def test_a_cycle_is_found_even_through_three_modules() -> None:
    graph = _graph(p__a=("p.b",), p__b=("p.c",), p__c=("p.a",), p__d=("p.a",))
    assert cycles(graph, "p") == [["p.a", "p.b", "p.c"]]


def test_a_cycle_in_the_real_tree_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("from pkg.two import X\n")
    (package / "two.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import one\nX = 1\n"
    )
    assert cycles(import_graph(tmp_path), "pkg") == [["pkg.one", "pkg.two"]]


def test_a_wrong_direction_is_named() -> None:
    graph = _graph(inferplane__engine__core__scheduler=("inferplane.engine.compute.runner",))
    rule = Rule("inferplane.engine.core", ("inferplane.engine.core",))
    assert rule.violations(graph) == [
        "inferplane.engine.core.scheduler imports inferplane.engine.compute.runner "
        "(inferplane.engine.core may import only inferplane.engine.core)"
    ]


def test_an_impure_import_two_steps_away_is_found() -> None:
    graph = _graph(p__policy=("p.helper",), p__helper=("httpx",))
    assert impure(graph, ["p.policy"], IMPURE) == ["p.helper imports httpx"]
