"""Receive-buffer recycling (mpc.runtime.buffers) and the allocator tuning of gRPC parties."""

import gc
import os
import platform

import numpy as np

import mpc
from mpc.runtime import allocator, buffers


def test_storage_comes_back_only_when_every_derived_array_is_gone():
    pool = buffers.BufferPool(max_idle_bytes=64 << 20, min_bytes=1 << 10)
    buf = pool.take(1 << 20, 64, 7)
    assert buf.ctypes.data % 64 == (-7) % 64 and buf.nbytes == 1 << 20
    buf[:] = 5
    arr = np.frombuffer(memoryview(buf[64:]).cast("B"), np.uint64)  # how the codec's views hold it
    del buf
    gc.collect()
    assert pool.idle_bytes == 0  # arr still uses the memory
    again = pool.take(1 << 20)
    assert not np.shares_memory(again, arr) and pool.reused == 0
    del again
    assert pool.idle_bytes > 0  # the second storage is idle now
    sub = arr[10:20]
    del arr
    assert pool.reused == 0 and int(sub[0]) == int(np.frombuffer(b"\x05" * 8, np.uint64)[0])
    before = pool.idle_bytes
    del sub
    assert pool.idle_bytes > before  # both storages idle
    reused = pool.take(1 << 20)
    assert pool.reused == 1 and reused.nbytes == 1 << 20


def test_pool_keeps_at_most_its_cap_and_serves_only_fitting_sizes():
    pool = buffers.BufferPool(max_idle_bytes=3 << 20, min_bytes=1 << 10)
    held = [pool.take(1 << 20) for _ in range(4)]
    del held
    assert pool.idle_bytes <= 3 << 20
    big = pool.take(4 << 20)  # no stored buffer is large enough
    small = pool.take(1 << 12)  # a stored 1 MiB buffer would waste too much
    assert pool.reused == 0 and big.nbytes == 4 << 20 and small.nbytes == 1 << 12
    small_values = pool.take(100)  # under min_bytes: plain numpy memory
    assert small_values.nbytes == 100


def _rounds(ctx):
    other = ctx.peers[0]
    out = []
    for r in range(4):
        mine = np.arange(300_000, dtype=np.uint64) * (ctx.rank + 1) + r
        got = ctx.exchange(other, {"a": mine, "r": r})
        out.append((int(got["a"].sum()), got["a"].flags.writeable, got["a"].flags.aligned, got["r"]))
        got["a"][:] = 0  # the receiver owns what it got, even if the memory is recycled later
    return out


def test_recycled_receive_buffers_carry_each_round_correctly_over_grpc():
    reused = buffers.POOL.reused
    out = mpc.run_local(_rounds, ["a", "b"], transport="grpc", triples=None)
    base = np.arange(300_000, dtype=np.uint64)
    for me, other_rank in (("a", 1), ("b", 0)):
        expect = [(int((base * (other_rank + 1) + r).sum()), True, True, r) for r in range(4)]
        assert out[me] == expect
    assert buffers.POOL.reused > reused  # later rounds reused the memory of earlier ones
    assert buffers.POOL.idle_bytes == 0  # emptied when the parties finished the job


def test_allocator_tuning_is_applied_once_on_glibc():
    first = allocator.tune()
    assert allocator.tune() == first
    on_glibc = platform.libc_ver()[0] == "glibc"
    assert first == (on_glibc and os.environ.get("GAOTIE_TUNE_MALLOC", "1") != "0")
