"""`inferplane up` wires the gateway's books as `inferplane gateway` does: key budgets always,
usage records to the fleet's ledger unless switched off (the running fleet is e2e); with local
processes its CPU replicas are pinned to this host's cores, which they may not outnumber
unless the fleet shares."""

import os
from pathlib import Path

import pytest

from inferplane.config import ConfigError
from inferplane.control.up import UpOptions, build
from inferplane.gateway.admission.auth import ApiKey, hash_key

FLEET = """
models: {chat: {source: demo:tiny}}
pools: {chat: {model: chat, replicas: {min: 0, max: 1}}}
routes: [{name: default, pool: chat}]
auth: {keys_file: keys.yaml}
"""


def _fleet(tmp_path: Path) -> str:
    (tmp_path / "keys.yaml").write_text(
        f'keys:\n  - {{name: capped, key_hash: "{hash_key("secret")}", team: ops,'
        " budget: {period: day, hard_usd: 1.0}}\n"
    )
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET + f"ledger: {{url: 'sqlite:///{tmp_path / 'ledger.db'}'}}\n")
    return str(fleet)


def _options(tmp_path: Path, ledger: bool) -> UpOptions:
    return UpOptions(_fleet(tmp_path), log_dir=tmp_path / "logs", ledger=ledger)


def test_key_budgets_apply_with_the_ledger_on_or_off(tmp_path: Path) -> None:
    capped = ApiKey(name="capped", key_hash=hash_key("secret"), team="ops")
    for ledger in (True, False):
        state, _, _ = build(_options(tmp_path, ledger))
        assert state.accountant.has_budget(capped)


def test_usage_records_are_spooled_beside_the_ledger_unless_switched_off(tmp_path: Path) -> None:
    state, _, _ = build(_options(tmp_path, ledger=True))
    assert state.accountant.spool is not None
    assert state.accountant.spool.folder == tmp_path / "ledger.db.spool"
    state, _, _ = build(_options(tmp_path, ledger=False))
    assert state.accountant.spool is None


def test_the_local_backend_pins_cpu_replicas_and_refuses_more_than_the_host(
    tmp_path: Path,
) -> None:
    cores = len(os.sched_getaffinity(0))
    fleet = tmp_path / "fleet.yaml"
    pools = f"pools: {{chat: {{model: chat, replicas: {{min: {cores + 1}, max: {cores + 1}}}}}}}\n"
    body = "models: {chat: {source: demo:tiny}}\nroutes: [{name: default, pool: chat}]\n"
    fleet.write_text(body + pools)
    with pytest.raises(ConfigError, match=rf"need {cores + 1} cores at their minimum \(chat"):
        build(UpOptions(str(fleet), log_dir=tmp_path / "logs", ledger=False))
    fleet.write_text(body + pools + "cpu: {share: true}\n")
    _, controller, _ = build(UpOptions(str(fleet), log_dir=tmp_path / "logs", ledger=False))
    book = controller.lifecycle.cores
    assert book is not None and book.size("chat") == 1
    assert book.size("chat.rollout") == 1  # a rollout's canary sized as its pool
