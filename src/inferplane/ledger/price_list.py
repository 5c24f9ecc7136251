"""The built-in GPU price list: $ per GPU-hour by provider, GPU and capacity.

These are list prices as of 2026-11 (the date each row carries), to the best of the project's
knowledge, per single GPU (multi-GPU instance prices divided by their GPU count). Prices move:
override them in the fleet file (`pricing.gpu_hourly_usd`) with what you actually pay.

A missing cell (None) means the provider does not offer that GPU or that capacity: Lambda and
CoreWeave sell no spot capacity, RunPod's "spot" is its interruptible tier and "reserved" its
savings plans, and the clouds' "reserved" is a one-year commitment.
"""

from datetime import date

LIST_DATE = date(2026, 11, 1)

GPU_NAMES = (
    "T4",
    "L4",
    "A10G",
    "L40S",
    "A100-40GB",
    "A100-80GB",
    "H100-SXM",
    "H100-PCIe",
    "H200",
    "B200",
)
PROVIDERS = ("aws", "gcp", "runpod", "lambda", "coreweave")
CAPACITIES = ("on-demand", "spot", "reserved")

Row = tuple[str, str, float | None, float | None, float | None]

# provider, gpu, on-demand, spot, reserved
LIST_PRICES: tuple[Row, ...] = (
    ("aws", "T4", 0.526, 0.21, 0.33),
    ("aws", "L4", 0.805, 0.35, 0.51),
    ("aws", "A10G", 1.006, 0.45, 0.63),
    ("aws", "L40S", 1.861, 0.80, 1.17),
    ("aws", "A100-40GB", 2.745, 1.20, 1.73),
    ("aws", "A100-80GB", 3.431, 1.55, 2.16),
    ("aws", "H100-SXM", 6.880, 3.10, 4.33),
    ("aws", "H200", 7.910, 3.60, 4.98),
    ("aws", "B200", 14.240, 6.40, 8.97),
    ("gcp", "T4", 0.35, 0.14, 0.22),
    ("gcp", "L4", 0.71, 0.28, 0.45),
    ("gcp", "A100-40GB", 3.67, 1.47, 2.31),
    ("gcp", "A100-80GB", 5.07, 2.03, 3.19),
    ("gcp", "H100-SXM", 11.06, 4.42, 6.97),
    ("gcp", "H200", 10.60, 4.24, 6.68),
    ("gcp", "B200", 12.50, 5.00, 7.88),
    ("runpod", "L4", 0.43, 0.22, 0.39),
    ("runpod", "L40S", 0.86, 0.43, 0.77),
    ("runpod", "A100-80GB", 1.64, 0.82, 1.48),
    ("runpod", "H100-SXM", 2.69, 1.35, 2.42),
    ("runpod", "H100-PCIe", 2.39, 1.20, 2.15),
    ("runpod", "H200", 3.59, 1.80, 3.23),
    ("runpod", "B200", 5.98, 2.99, 5.38),
    ("lambda", "A10G", 0.75, None, None),
    ("lambda", "A100-40GB", 1.29, None, None),
    ("lambda", "A100-80GB", 1.79, None, 1.49),
    ("lambda", "H100-SXM", 2.99, None, 2.29),
    ("lambda", "H100-PCIe", 2.49, None, None),
    ("lambda", "H200", 3.79, None, 2.99),
    ("lambda", "B200", 4.99, None, 3.99),
    ("coreweave", "L40S", 2.25, None, 1.35),
    ("coreweave", "A100-80GB", 2.70, None, 1.62),
    ("coreweave", "H100-SXM", 6.16, None, 3.70),
    ("coreweave", "H100-PCIe", 4.25, None, 2.55),
    ("coreweave", "H200", 6.31, None, 3.79),
    ("coreweave", "B200", 8.60, None, 5.16),
)

# Other spellings people use, normalised (lower case, no "nvidia", spaces, "-" or "_").
GPU_ALIASES = {
    "h100": "H100-SXM",
    "h10080gb": "H100-SXM",
    "h100sxm5": "H100-SXM",
    "h100pci": "H100-PCIe",
    "a100": "A100-80GB",
    "a10080": "A100-80GB",
    "a10080g": "A100-80GB",
    "a10040": "A100-40GB",
    "a10040g": "A100-40GB",
    "a10": "A10G",
    "h200141gb": "H200",
    "b200180gb": "B200",
}
