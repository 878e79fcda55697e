"""keep_freed_memory: arrays freed by one analysis call are reused by the next without
page faults (run in a child process: the setting is process-wide)."""

import subprocess
import sys

CHILD = """
import resource, sys
import numpy as np
from insitu.coupling.memory import keep_freed_memory

def faults():  # arrays of a call's sizes (1-9 MiB), allocated, written and freed 5 times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        held = [np.ones(size, np.uint8) for size in (3 << 20, 9 << 20, 1 << 20, 5 << 20)]
        del held
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
plain = faults()
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
faults()
print(plain, faults(), kept)
"""


def _faults(mode: str) -> tuple[int, int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]), out[2]


def test_freed_arrays_are_reused_without_page_faults():
    plain, kept, ok = _faults("keep")
    assert ok == "True"
    pages = 18 * 5 * (1 << 20) // 4096  # 18 MiB written per round
    assert plain > pages // 4, plain  # glibc's default: fresh pages for many of them
    assert kept < pages // 100, (plain, kept)


def test_without_it_the_pages_fault_again():
    # the check above measures the setting, not a warm process: untouched, it still faults
    plain, again, _ = _faults("plain")
    assert again > (18 * 5 * (1 << 20) // 4096) // 4, (plain, again)


def test_keep_memory_option():
    from insitu.coupling.options import Options

    assert Options.parse("a", ["every=5"]).keep_memory
    assert not Options.parse("a", ["every=5", "keep_memory=no"]).keep_memory
