"""Error messages say what happened; only libraries that may quote cell values are withheld.

Each error here is raised for real (a process pool whose worker dies, a gRPC call to a
closed port, numpy on mismatched shapes, pandas parsing a cell) and goes through
``errors.describe``, directly or as the JobFailed of a run_local job.
"""

import concurrent.futures
import multiprocessing
import os
import queue

import grpc
import numpy as np
import pandas as pd
import pytest

import mpc
from mpc import ss
from mpc.cluster import free_port
from mpc.runtime import codec
from mpc.runtime.errors import JobFailed, describe


def _raised(fn):
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the point of the helper
        return exc
    raise AssertionError("did not raise")


def _fail_on_first(body):
    """A job whose first party runs ``body`` and whose second waits for it."""
    def job(ctx):
        if ctx.rank == 0:
            body()
        return ctx.recv(ctx.parties[0]) if ctx.rank else None
    with pytest.raises(JobFailed) as info:
        mpc.run_local(job, ["a", "b"], triples=None)
    assert info.value.party == "a"
    return str(info.value)


def test_broken_process_pool_says_what_happened():
    def broken_pool():
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool.submit(os._exit, 3).result()
    message = _fail_on_first(broken_pool)
    assert "BrokenProcessPool: A process in the process pool was terminated abruptly" in message
    assert "withheld" not in message


def test_shape_errors_inside_gaotie_keep_their_message():
    def mismatch():
        ctx = mpc.Context("a", ["a"], "j", transport=None, options={"triples": None})
        ss.from_shares(ctx, np.zeros(3, dtype=np.uint64)) + ss.from_shares(ctx, np.zeros(4, dtype=np.uint64))
    assert describe(_raised(mismatch)) == "ValueError: shape mismatch: (3,) and (4,)"
    # numpy raising from its own Python code (np.stack) and from C (broadcasting)
    assert _fail_on_first(lambda: np.stack([np.zeros(2), np.zeros(3)])).endswith(
        "ValueError: all input arrays must have the same shape")
    assert describe(_raised(lambda: np.zeros(2) + np.zeros(3))) == \
        "ValueError: operands could not be broadcast together with shapes (2,) (3,)"


def test_grpc_error_gives_status_and_details():
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        call = channel.unary_unary("/gaotie.v1.Party/Status")
        exc = _raised(lambda: call(b"", timeout=5))
    text = describe(exc)
    assert text.startswith("_InactiveRpcError: UNAVAILABLE: ") and len(text) > len("_InactiveRpcError: UNAVAILABLE: ")
    assert "\n" not in text


class _Point:
    def __init__(self, xy):
        self.xy = xy


def test_codec_error_says_what_was_wrong():
    # an extension's decoder that trips over a peer's value inside numpy says what numpy found
    codec.register_extension("test.point", _Point, lambda p: p.xy, lambda v: _Point(np.reshape(v, (2,))))
    data = codec.dumps(_Point(np.arange(3)))
    with pytest.raises(codec.CodecError) as info:
        codec.loads(data)
    assert str(info.value) == "malformed value (ValueError: cannot reshape array of size 3 into shape (2,))"


def test_errors_without_a_message_say_where_and_why():
    # concurrent.futures and queue raise exceptions whose str() is empty
    text = describe(_raised(lambda: concurrent.futures.Future().result(timeout=0)))
    assert text.startswith("TimeoutError (no message) at concurrent/futures/_base.py:")
    assert "called from test_errors.py:" in text
    assert describe(_raised(lambda: queue.Queue().get(timeout=0))).startswith("Empty (no message) at queue.py:")

    def wrapped():
        try:
            {}["k"]
        except KeyError as exc:
            raise RuntimeError() from exc
    text = _fail_on_first(wrapped)
    assert "RuntimeError (no message) at test_errors.py:" in text and "in wrapped" in text
    assert text.endswith("caused by KeyError: 'k'")


def test_stdlib_messages_are_kept():
    assert describe(_raised(lambda: int("12x"))) == "ValueError: invalid literal for int() with base 10: '12x'"
    assert describe(_raised(lambda: open("/nonexistent/file"))).startswith("FileNotFoundError: [Errno 2]")


def test_pandas_and_pyarrow_messages_on_cells_are_withheld():
    secret = "salary-93512"
    exc = _raised(lambda: pd.to_numeric(pd.Series(["1", secret])))
    assert secret in str(exc)  # pandas quotes the cell ...
    text = describe(exc)  # ... describe does not
    assert secret not in text and "93512" not in text
    assert text.startswith("ValueError raised in pandas (called from test_errors.py:")
    assert text.endswith("message withheld as it may quote data values")

    message = _fail_on_first(lambda: pd.DataFrame({"v": [1.5, secret]}).astype({"v": float}))
    assert secret not in message and "raised in pandas" in message and "withheld" in message

    message = _fail_on_first(lambda: pd.DataFrame({"v": [object()]}).to_parquet("/dev/null"))
    assert "ArrowInvalid raised in pyarrow" in message and "object at" not in message
