"""malloc.py: a serving process keeps at most two malloc arenas and gives
its free memory back (glibc; each check runs in a fresh interpreter)."""

import json
import os
import subprocess
import sys
import threading

import pytest

from cks.malloc import ARENAS, _glibc
from support import ROOT, fixture
from support.server import Cksd

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only")

HEAP_MAX = 64 << 20
"""The size and alignment of the address range glibc reserves for each arena
besides the main one (HEAP_MAX_SIZE on 64-bit systems)."""


def thread_arenas(pid):
    """How many arenas besides the main heap the process has: anonymous
    mappings on a HEAP_MAX boundary whose parts (in use, then reserved) add
    up to HEAP_MAX."""
    regions = []
    with open("/proc/%d/maps" % pid) as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            regions.append((start, end, len(fields) == 5))
    count = 0
    for i, (start, end, anonymous) in enumerate(regions):
        if not anonymous or start % HEAP_MAX:
            continue
        size = end - start
        if size < HEAP_MAX and i + 1 < len(regions) and regions[i + 1][0] == end:
            size += regions[i + 1][1] - regions[i + 1][0]
        count += size == HEAP_MAX
    return count


PROBE = r"""
import json, sys, threading
sys.path.insert(0, %(lib)r)
from cks import malloc

def heap_kb():
    # the resident size of the main heap and of all anonymous memory
    sizes = {"heap": 0, "anon": 0}
    name = None
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else ""
        elif fields[0] == "Rss:" and name in ("", "[heap]"):
            sizes["anon"] += int(fields[1])
            if name == "[heap]":
                sizes["heap"] += int(fields[1])
    return sizes

mode = sys.argv[1]
if mode == "capped":
    assert malloc.cap_arenas(1)
held = []
start = threading.Barrier(4)

def allocate():
    start.wait()
    # 1,000-byte objects: past Python's small-object allocator, under
    # malloc's mmap threshold, so they come from an arena
    held.append([bytes(1000) for _ in range(30000)])

threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
result = {"allocated": heap_kb()}
for block in held:
    del block[:-1]  # free all but the last of each thread's run
before = heap_kb()
result["released"] = malloc.release_free_memory()
result["before"], result["after"] = before, heap_kb()
print(json.dumps(result))
"""


def run_probe(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    out = subprocess.run([sys.executable, "-c", PROBE % {"lib": os.path.join(ROOT, "lib")},
                          mode], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_capped_arenas_keep_every_threads_memory_in_the_main_heap():
    capped, free = run_probe("capped"), run_probe("free")
    # 4 threads x 30,000 x ~1 KB: about 120 MB, in the main heap when capped
    assert capped["allocated"]["heap"] > 100_000
    assert free["allocated"]["heap"] < 60_000  # (without the cap: in arenas of their own)
    assert free["allocated"]["anon"] > 100_000


def test_free_memory_inside_the_heaps_is_given_back():
    for mode in ("capped", "free"):
        result = run_probe(mode)
        # freed, but held by malloc: only the top of a heap goes back by itself
        assert result["before"]["anon"] > 100_000, (mode, result)
        assert result["released"] is True
        assert result["after"]["anon"] < result["before"]["anon"] - 80_000, (mode, result)


UPLOADED = ("rsa4096", "dsa-elg", "multi-uid", "photo", "certified", "ed25519",
            "nistp521", "v6-rsa3072")


def test_cksd_serving_processes_keep_at_most_two_arenas(db_url, tmp_path):
    """Eight clients upload and look up at once, so that several of a serving
    process's threads allocate: it has no more arenas than the cap.  (With
    one serving process, cksd serves in its own process.)"""
    config = tmp_path / "cks.conf"
    config.write_text("[ratelimit]\nexempt = 127.0.0.0/8\n[server]\nprocesses = 1\n")
    with Cksd(db_url, config=str(config)) as cksd:
        errors = []

        def client(offset):
            try:
                for name in UPLOADED[offset:] + UPLOADED[:offset]:
                    status, _, _ = cksd.add(fixture(name))
                    assert status == 200
                    status, _, _ = cksd.lookup(op="vindex", search=name)
                    assert status in (200, 404)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(len(UPLOADED))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert thread_arenas(cksd.proc.pid) <= ARENAS - 1
