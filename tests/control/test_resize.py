"""Which replicas a resize touches: pending restarts first, then the newest starting replica,
then the least busy ready one; keep_warm keeps one asleep when the pool empties; a scale-up
wakes sleeping replicas before starting any."""

from inferplane.control.resize import Candidate, ScaleDown, ScaleUp, scale_down, scale_up

POOL = [
    Candidate("old", "ready", busy=3),
    Candidate("idle", "ready", busy=0),
    Candidate("busy", "ready", busy=9),
    Candidate("s1", "starting"),
    Candidate("s2", "starting"),
    Candidate("d", "draining"),
]


def test_starting_replicas_go_first_newest_first_then_the_least_busy_ready_one() -> None:
    assert scale_down(POOL, 1) == ScaleDown(drain=("s2",))
    assert scale_down(POOL, 3) == ScaleDown(drain=("s2", "s1", "idle"))
    assert scale_down(POOL, 4).drain == ("s2", "s1", "idle", "old")


def test_pending_restarts_are_cancelled_before_any_replica_goes() -> None:
    assert scale_down(POOL, 1, restarts_due=2) == ScaleDown(cancel_restarts=1)
    assert scale_down(POOL, 3, restarts_due=2) == ScaleDown(cancel_restarts=2, drain=("s2",))


def test_ties_go_to_the_older_replica_and_draining_or_sleeping_ones_are_never_chosen() -> None:
    pool = [Candidate("a", "ready"), Candidate("z", "sleeping"), Candidate("b", "ready")]
    assert scale_down(pool, 1).drain == ("a",)
    assert scale_down(pool, 5).drain == ("a", "b")  # only what is up or coming up
    assert scale_down([Candidate("d", "draining")], 1) == ScaleDown()


def test_keep_warm_sleeps_the_first_ready_replica_when_the_pool_empties() -> None:
    up = [Candidate("s", "starting"), Candidate("a", "ready", 2), Candidate("b", "ready", 1)]
    assert scale_down(up, 3, keep_warm=True) == ScaleDown(drain=("s", "a"), sleep="b")
    assert scale_down(up, 2, keep_warm=True).sleep is None  # one stays up: nothing sleeps
    assert scale_down(up, 3).sleep is None  # without keep_warm every replica drains
    with_restart = scale_down(up, 3, restarts_due=1, keep_warm=True)
    assert with_restart.sleep is None  # a restart stays due: the pool is not empty


def test_keep_warm_sleeps_nothing_more_once_a_replica_sleeps_or_none_is_ready() -> None:
    asleep = [Candidate("z", "sleeping"), Candidate("a", "ready")]
    assert scale_down(asleep, 1, keep_warm=True) == ScaleDown(drain=("a",))
    starting = [Candidate("s", "starting")]  # nothing loaded to keep
    assert scale_down(starting, 1, keep_warm=True) == ScaleDown(drain=("s",))


def test_scale_up_wakes_sleeping_replicas_before_starting_any() -> None:
    pool = [Candidate("a", "ready"), Candidate("z1", "sleeping"), Candidate("z2", "sleeping")]
    assert scale_up(pool, 1) == ScaleUp(wake=("z1",))
    assert scale_up(pool, 4) == ScaleUp(wake=("z1", "z2"), start=2)
    assert scale_up([], 2) == ScaleUp(start=2)
    assert scale_up(pool, 0) == ScaleUp()
