"""The binding's additions to mfusepy, without a mount."""

from __future__ import annotations

import ctypes

import mfusepy

from fusefs.binding import fill_stat


def test_fill_stat_writes_what_mfusepy_writes_and_clears_the_rest() -> None:
    attrs = {"st_mode": 0o100644, "st_nlink": 1, "st_size": 123_456_789_012, "st_blocks": 241_126_540,
             "st_uid": 1000, "st_gid": 100, "st_atime": 5_000_000_007, "st_mtime": 1_700_000_000_123_456_789,
             "st_ctime": 1_700_000_001_000_000_001}
    expected = mfusepy.c_stat()
    mfusepy.set_st_attrs(expected, attrs, use_ns=True)
    st = mfusepy.c_stat()
    ctypes.memset(ctypes.byref(st), 0xAB, ctypes.sizeof(st))  # what the previous entry left
    fill_stat(st, attrs)
    assert bytes(st) == bytes(expected)
