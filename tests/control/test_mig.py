import pytest

from inferplane.control.mig import MigLayout, mig_profiles, smallest_profile, solve_starts

GB80 = 80 * 1024**3


def layout_of(*names: str) -> MigLayout:
    layout = MigLayout()
    profiles = mig_profiles()
    for name in names:
        layout.place(profiles[name])
    return layout


@pytest.mark.parametrize(
    "names",
    [
        ("7g.80gb",),
        ("4g.40gb", "3g.40gb"),
        ("3g.40gb", "3g.40gb"),
        ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"),  # needs the 3g at 4
        ("1g.10gb",) * 4 + ("3g.40gb",),
        ("2g.20gb", "2g.20gb", "2g.20gb", "1g.10gb"),
        ("1g.20gb",) * 4,
        ("1g.10gb",) * 7,
        ("4g.40gb", "2g.20gb", "1g.10gb"),
    ],
)
def test_valid_layouts(names: tuple[str, ...]) -> None:
    assert sum(layout_of(*names).counts().values()) == len(names)


@pytest.mark.parametrize(
    ("names", "extra"),
    [
        (("4g.40gb",), "4g.40gb"),
        (("3g.40gb", "3g.40gb"), "1g.10gb"),  # memory is full
        (("1g.10gb",) * 7, "1g.10gb"),  # compute is full
        (("1g.20gb",) * 4, "1g.10gb"),
        (("7g.80gb",), "1g.10gb"),
        (("2g.20gb",) * 3, "2g.20gb"),
    ],
)
def test_invalid_additions(names: tuple[str, ...], extra: str) -> None:
    layout = layout_of(*names)
    assert not layout.fits(mig_profiles()[extra])
    with pytest.raises(ValueError, match="no room"):
        layout.place(mig_profiles()[extra])


def test_solved_starts_follow_the_placement_rules() -> None:
    profiles = mig_profiles()
    wanted = [profiles[n] for n in ("1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb")]
    solved = solve_starts(wanted)
    assert solved is not None
    starts = {(p.name, start) for p, start in solved}
    assert ("3g.40gb", 4) in starts and ("2g.20gb", 0) in starts
    assert solve_starts([profiles["4g.40gb"], profiles["4g.40gb"]]) is None


def test_ordinals_count_slices_of_one_profile() -> None:
    layout = MigLayout()
    profiles = mig_profiles()
    assert [layout.place(profiles[n]) for n in ("3g.40gb", "1g.10gb", "1g.10gb")] == [0, 0, 1]


def test_counts_in_profile_order() -> None:
    assert layout_of("3g.40gb", "1g.10gb", "2g.20gb").counts() == {
        "1g.10gb": 1, "2g.20gb": 1, "3g.40gb": 1}  # fmt: skip


def test_smallest_profile() -> None:
    gib = 1024**3
    assert smallest_profile(5 * gib, GB80).name == "1g.10gb"  # type: ignore[union-attr]
    assert smallest_profile(15 * gib, GB80).name == "1g.20gb"  # type: ignore[union-attr]
    assert smallest_profile(30 * gib, GB80).name == "3g.40gb"  # type: ignore[union-attr]
    assert smallest_profile(70 * gib, GB80).name == "7g.80gb"  # type: ignore[union-attr]
    assert smallest_profile(81 * gib, GB80) is None
