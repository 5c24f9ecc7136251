"""The run-time book of cores: NUMA-aware grants, sharing when full, cores given back, the
autoscaler's cap."""

from inferplane.control.core_book import CoreBook, CoreGrant
from inferplane.control.cores import CorePlan
from inferplane.control.inventory import declared_cpus


def book(cores: int, nodes: int = 1, reserved: int = 0, **sizes: int) -> CoreBook:
    host = declared_cpus(cores, nodes)
    return CoreBook(CorePlan(host, host.cpus[:reserved], sizes))


def take(book: CoreBook, replica: str, pool: str) -> CoreGrant:
    grant = book.offer(pool)
    assert grant is not None
    book.hold(replica, grant)
    return grant


def test_replicas_take_free_cores_within_one_numa_node() -> None:
    cores = book(8, nodes=2, reserved=1, wide=3, narrow=2)
    assert take(cores, "n-0", "narrow").cpus == (1, 2)  # core 0 is the platform's
    # node 0 has 1 free, node 1 has 4: the 3-core replica fits only in node 1
    assert take(cores, "w-0", "wide").cpus == (4, 5, 6)
    assert take(cores, "n-1", "narrow").cpus == (3, 7)  # no node has 2 free: across nodes
    assert cores.free() == () and cores.offer("other") is None  # not a pinned pool


def test_best_fit_keeps_the_larger_hole_whole() -> None:
    cores = book(8, nodes=2, one=1, four=4)
    cores.hold("x", CoreGrant((0, 1)))  # node 0: 2 free, node 1: 4 free
    assert take(cores, "o-0", "one").cpus == (2,)  # the tighter node
    assert take(cores, "f-0", "four").cpus == (4, 5, 6, 7)


def test_a_full_host_shares_the_least_loaded_cores_without_more_threads() -> None:
    cores = book(2, p=1)
    first, second = take(cores, "p-0", "p"), take(cores, "p-1", "p")
    assert (first.cpus, second.cpus) == ((0,), (1,)) and not first.shared
    third = take(cores, "p-2", "p")
    assert third == CoreGrant((0,), shared=True) and third.threads == 1
    assert third.describe() == "cpus 0, 1 thread, shared"
    assert cores.load() == {0: 2, 1: 1}


def test_given_back_cores_go_to_the_next_replica_and_a_waker_asks_for_its_own() -> None:
    cores = book(4, p=2)
    mine = take(cores, "p-0", "p")
    cores.release("p-0")  # asleep
    assert cores.offer("p", prefer=mine.cpus) == mine  # still free: its own again
    cores.hold("p-1", cores.offer("p") or mine)  # a new replica took them meanwhile
    assert cores.offer("p", prefer=mine.cpus) == CoreGrant((2, 3))


def test_the_cap_counts_free_cores_and_pending_restarts() -> None:
    cores = book(4, p=1)
    take(cores, "p-0", "p")
    cap = cores.cap("p", active=1)
    assert (
        cap is not None and cap.replicas == 4 and cap.reason == "3 of 4 cores free, 1 per replica"
    )
    pending = cores.cap("p", active=2, pending=1)  # one restart will take a core
    assert pending is not None and pending.replicas == 4
    two = book(4, p=2)
    take(two, "p-0", "p")
    take(two, "p-1", "p")
    full = two.cap("p", active=2)
    assert full is not None and full.replicas == 2 and full.reason.startswith("0 of 4")
    assert two.cap("gpu-pool", active=1) is None
