"""Stable hashes for routing: the same input gives the same number in every process.

Python's hash() of a str changes with each interpreter start, so two gateways (or a gateway
and the simulator) would disagree on where a user or a prefix belongs; blake2b does not.
"""

import hashlib

BUCKETS = 10_000  # canary and split shares resolve to 0.01 %


def hash64(data: bytes) -> int:
    """An unsigned 64-bit stable hash of bytes."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def stable_bucket(text: str, buckets: int = BUCKETS) -> int:
    """Map a string (a user id, a key name) to [0, buckets), the same way everywhere."""
    return hash64(text.encode("utf-8")) % buckets


def mix64(value: int) -> int:
    """Scramble a 64-bit integer (splitmix64's finalizer) so nearby inputs land far apart."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK64
    return value ^ (value >> 31)


_MASK64 = (1 << 64) - 1
