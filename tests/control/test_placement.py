from dataclasses import replace

from inferplane.control.cores import CorePlan
from inferplane.control.demand import ReplicaDemand
from inferplane.control.inventory import GpuDevice, declared_cpus
from inferplane.control.placement import place

GIB = 1024**3
H100 = 80 * GIB


def gpu(index: int, mig: bool = False, memory: int = H100, name: str = "H100") -> GpuDevice:
    return GpuDevice(index, name, memory, mig_capable=True, mig=mig)


def replica(name: str, gib: float, **kwargs: object) -> ReplicaDemand:
    pool = name.partition("-")[0]
    return ReplicaDemand(name, pool, int(gib * GIB), **kwargs)  # type: ignore[arg-type]


def test_best_fit_decreasing_on_whole_gpus() -> None:
    devices = [gpu(0), gpu(1)]
    demands = [replica("a-0", 30), replica("b-0", 50), replica("c-0", 45), replica("d-0", 20)]
    result = place(demands, devices)
    where = {a.replica: a.visible_devices for a in result.assignments}
    # 50 -> gpu0, 45 -> gpu1, 30 -> gpu0 (best fit: 30 free there vs 35), 20 -> gpu1
    assert where == {"b-0": "0", "c-0": "1", "a-0": "0", "d-0": "1"}
    assert [a.replica for a in result.assignments] == ["a-0", "b-0", "c-0", "d-0"]
    assert result.unplaced == ()
    assert abs(result.utilisation - 145 / 160) < 1e-9
    assert result.assignments[1].memory_fraction == 0.625


def test_multi_gpu_replicas_take_empty_whole_gpus() -> None:
    devices = [gpu(0), gpu(1), gpu(2)]
    demands = [replica("small-0", 10), replica("big-0", 70, gpus=2)]
    result = place(demands, devices)
    env = {a.replica: a.env["CUDA_VISIBLE_DEVICES"] for a in result.assignments}
    assert env == {"big-0": "0,1", "small-0": "2"}
    full = place([replica("big-0", 70, gpus=2), replica("big-1", 70, gpus=2)], devices)
    assert [u.replica for u in full.unplaced] == ["big-1"]
    assert "needs 2 empty whole GPUs" in full.unplaced[0].reason


def test_explicit_mig_profiles_pack_onto_mig_gpus() -> None:
    devices = [gpu(0, mig=True), gpu(1, mig=True)]
    demands = [replica(f"p-{i}", 5, mig="3g.40gb") for i in range(3)] + [
        replica("q-0", 5, mig="1g.10gb")]  # fmt: skip
    result = place(demands, devices)
    assert result.unplaced == ()
    names = {a.replica: a.visible_devices for a in result.assignments}
    assert names == {"p-0": "MIG-GPU-0/3g.40gb/0", "p-1": "MIG-GPU-0/3g.40gb/1",
                     "p-2": "MIG-GPU-1/3g.40gb/0", "q-0": "MIG-GPU-1/1g.10gb/0"}  # fmt: skip
    config = result.mig_parted_config()
    assert config == {
        "version": "v1",
        "mig-configs": {"inferplane": [
            {"devices": [0], "mig-enabled": True, "mig-devices": {"3g.40gb": 2}},
            {"devices": [1], "mig-enabled": True, "mig-devices": {"1g.10gb": 1, "3g.40gb": 1}},
        ]},
    }  # fmt: skip


def test_unsized_replicas_get_the_smallest_fitting_slice() -> None:
    devices = [gpu(0, mig=True)]
    demands = [replica("a-0", 25), replica("b-0", 15), replica("c-0", 8), replica("d-0", 8)]
    result = place(demands, devices)
    profiles = {a.replica: a.mig_profile for a in result.assignments}
    assert profiles == {"a-0": "3g.40gb", "b-0": "1g.20gb", "c-0": "1g.10gb", "d-0": "1g.10gb"}
    assert result.gpus[0].mig_devices == {"1g.10gb": 2, "1g.20gb": 1, "3g.40gb": 1}


def test_mig_and_whole_gpus_side_by_side() -> None:
    devices = [gpu(0, mig=True), gpu(1)]
    demands = [replica("big-0", 60), replica("slice-0", 5, mig="2g.20gb"), replica("s-0", 70)]
    result = place(demands, devices)
    where = {a.replica: a.visible_devices for a in result.assignments}
    assert where["s-0"] == "1"  # the whole GPU leaves 10 GiB; a 7g slice would leave 0
    assert where["slice-0"] == "MIG-GPU-0/2g.20gb/0"
    assert [u.replica for u in result.unplaced] == ["big-0"]
    entries = result.mig_parted_config()["mig-configs"]["inferplane"]
    assert entries[1] == {"devices": [1], "mig-enabled": False}


def test_reasons_for_unplaceable_replicas() -> None:
    whole = [gpu(0, name="L4", memory=22 * GIB)]
    result = place([replica("x-0", 5, gpu_kind="H100"), replica("y-0", 30),
                    replica("z-0", 5, mig="1g.10gb")], whole)  # fmt: skip
    reasons = {u.replica: u.reason for u in result.unplaced}
    assert reasons["x-0"] == "no H100 GPU in the inventory (have: L4)"
    assert "needs 30.0 GiB on one GPU; the most free on a whole GPU is 22.0 GiB" in reasons["y-0"]
    assert "needs a GPU declared with mig: true" in reasons["z-0"]
    too_big = place([replica("w-0", 15, mig="1g.10gb")], [gpu(0, mig=True)])
    assert "more than a 1g.10gb slice's 10.0 GiB" in too_big.unplaced[0].reason
    full = place([replica(f"v-{i}", 1, mig="4g.40gb") for i in range(2)], [gpu(0, mig=True)])
    assert full.unplaced[0].reason == "no free 4g.40gb slot left on the MIG GPUs"


def test_cpu_replicas_need_no_gpu() -> None:
    result = place([ReplicaDemand("cpu-0", "cpu", 0, uses_gpu=False)], [])
    assert result.assignments[0].visible_devices == ""
    assert result.utilisation == 0.0 and result.mig_parted_config()["mig-configs"] == {
        "inferplane": []}  # fmt: skip


def test_gpu_kind_filters_devices() -> None:
    devices = [gpu(0, name="L4", memory=22 * GIB), gpu(1, name="H100-SXM")]
    result = place([replica("a-0", 5, gpu_kind="H100"), replica("b-0", 5, gpu_kind="L4")], devices)
    assert [a.visible_devices for a in result.assignments] == ["1", "0"]


def cpu_replica(name: str) -> ReplicaDemand:
    return ReplicaDemand(name, name.rpartition("-")[0], 0, uses_gpu=False)


def test_cpu_replicas_are_pinned_to_cores_of_a_declared_host() -> None:
    host = declared_cpus(16, 2)  # two NUMA nodes of 8 cores, core 0 kept for the platform
    plan = CorePlan(host, (0,), {"chat": 6, "embed": 2}, share=False)
    demands = [cpu_replica("chat-0"), cpu_replica("chat-1"), cpu_replica("embed-0"),
               cpu_replica("embed-1")]  # fmt: skip
    result = place(demands, [], plan)
    cores = {a.replica: (a.cpus, a.threads) for a in result.assignments}
    assert cores == {
        "chat-0": ((1, 2, 3, 4, 5, 6), 6),  # node 0's 7 free cores hold it
        "chat-1": ((8, 9, 10, 11, 12, 13), 6),  # node 0 has 1 left: node 1
        "embed-0": ((14, 15), 2),  # the one node with 2 free
    }
    (missing,) = result.unplaced  # 1 core left (7): the autoscaler stops `embed` here
    assert missing.replica == "embed-1" and "needs 2 cores; 1 of 15 free" in missing.reason
    assert result.cores is not None and result.cores.replicas[7] == ()
    assert result.cores.replicas[14] == ("embed-0",) and 0 not in result.cores.replicas


def test_without_free_cores_a_replica_is_unplaced_unless_the_fleet_shares() -> None:
    plan = CorePlan(declared_cpus(2), (), {"p": 1})
    result = place([cpu_replica(f"p-{i}") for i in range(3)], [], plan)
    assert [a.cpus for a in result.assignments] == [(0,), (1,)]
    (missing,) = result.unplaced
    assert missing.replica == "p-2" and "needs 1 cores; 0 of 2 free" in missing.reason
    shared = place([cpu_replica(f"p-{i}") for i in range(3)], [], replace(plan, share=True))
    assert shared.unplaced == () and shared.assignments[2].shared_cpus
    assert shared.assignments[2].cpus == (0,) and shared.assignments[2].threads == 1
