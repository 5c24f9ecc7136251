"""A pool's resources as a Ray bundle, and the reason a bundle waits (pure: no Ray)."""

import pytest

from inferplane.config.schema import Resources
from inferplane.control.actuators.ray_bundle import Bundle, bundle_for, fits, unplaced_reason

H100_NODE = {"CPU": 8.0, "GPU": 1.0, "accelerator_type:H100": 1.0, "memory": 64 * 1024.0**3}


def test_gpus_and_their_type_become_the_bundle() -> None:
    four = {"gpu": "H100", "count": 2, "cpus": 4, "memory_gib": 16}
    bundle = bundle_for(Resources.model_validate(four))
    assert bundle.resources == {"CPU": 4.0, "GPU": 2.0, "accelerator_type:H100": 0.001,
                                "memory": 16.0 * 1024**3}  # fmt: skip
    assert bundle.custom == {"accelerator_type:H100": 0.001}
    assert bundle.describe() == "2 x H100, 4 CPU, 16 GiB memory"
    custom = bundle_for(Resources(gpu="L4", count=2), gpu_type_as="resource")
    assert custom.resources == {"CPU": 1.0, "GPU": 2.0, "L4": 2.0}
    assert bundle_for(Resources()).resources == {"CPU": 1.0}


def test_a_mig_slice_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="backend: local"):
        bundle_for(Resources(mig="3g.40gb"))


def test_fits_reads_free_amounts_with_the_label_share() -> None:
    one = bundle_for(Resources(gpu="H100"))
    assert fits(one, H100_NODE)
    assert fits(one, {**H100_NODE, "accelerator_type:H100": 0.999})  # another replica's share
    assert not fits(one, {"CPU": 8.0, "accelerator_type:H100": 0.999})  # its GPU is taken
    assert not fits(bundle_for(Resources(gpu="A100-80GB")), H100_NODE)


def test_the_reason_says_full_or_never() -> None:
    one = bundle_for(Resources(gpu="H100"))
    total = {"a": H100_NODE, "b": H100_NODE, "head": {"CPU": 2.0}}
    full = {"a": {"CPU": 7.0}, "b": {"CPU": 7.0}, "head": {"CPU": 2.0}}
    assert unplaced_reason(one, full, total) == (
        "no node with 1 x H100, 1 CPU free (0 GPU free across 3 nodes)"
    )
    assert unplaced_reason(one, total, total) == ""  # it fits: Ray is placing it
    two = bundle_for(Resources(gpu="H100", count=2))
    assert unplaced_reason(two, total, total) == (
        "no node has 2 x H100, 1 CPU (3 nodes: at most 1 GPU on one)"
    )
    a100 = bundle_for(Resources(gpu="A100-80GB"))
    assert "none offers A100-80GB" in unplaced_reason(a100, total, total)
    assert unplaced_reason(Bundle(cpus=1.0), {}, {}).startswith("no node alive")
