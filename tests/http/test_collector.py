"""settle_heap: the process's long-lived objects frozen, and cyclic garbage made afterwards
still collected without anyone calling gc.collect(). Run in a child interpreter: the settings
are the whole process's."""

import subprocess
import sys

CHILD = """
import gc, weakref
from inferplane.http.collector import settle_heap

settle_heap()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
freed = []

class Node:
    pass

for index in range(50_000):  # a reference cycle per request, as exceptions' tracebacks make
    node = Node()
    node.me = node
    weakref.finalize(node, freed.append, index)
    del node
assert len(freed) > 40_000, len(freed)
print("ok")
"""


def test_settle_heap_freezes_and_still_collects_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
