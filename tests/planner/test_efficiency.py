from inferplane.planner.efficiency import (
    DEFAULT_BANDWIDTH,
    DEFAULT_COMPUTE,
    fit_efficiency,
    measurements_from_json,
)


def test_defaults_are_assumed() -> None:
    table = fit_efficiency([])
    efficiency = table.for_gpu("H100-SXM")
    assert efficiency.bandwidth.value == DEFAULT_BANDWIDTH
    assert efficiency.compute.value == DEFAULT_COMPUTE
    assert not efficiency.bandwidth.measured and table.measured_gpus() == []


def test_measured_fractions_replace_defaults_for_their_gpu_only() -> None:
    data = {
        "roofline": [
            {"gpu": "H100-SXM", "bandwidth_fraction": 0.8},
            {"gpu": "H100-SXM", "bandwidth_fraction": 0.6, "compute_fraction": 0.55},
            {"gpu": "H100-SXM", "bandwidth_fraction": 0.9},
        ]
    }
    table = fit_efficiency(measurements_from_json(data, "decode.json"))
    h100 = table.for_gpu("H100-SXM")
    assert h100.bandwidth.value == 0.8  # the median
    assert h100.bandwidth.source == "measured: decode.json (n=3)"
    assert h100.compute.value == 0.55 and h100.compute.measured
    assert not table.for_gpu("L4").bandwidth.measured


def test_other_content_and_bad_values_are_ignored() -> None:
    assert measurements_from_json([1, 2], "x.json") == []
    assert measurements_from_json({"tokens_per_s": 9}, "x.json") == []
    bad = {"roofline": [{"gpu": "L4", "bandwidth_fraction": 1.7}, {"bandwidth_fraction": 0.5}]}
    assert measurements_from_json(bad, "x.json") == []
