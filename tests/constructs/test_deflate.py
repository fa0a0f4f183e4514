"""constructs_lib.deflate: gzip whose bytes depend on the input alone, read back by zlib."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest

from constructs_lib import deflate, user_data


def samples() -> dict[str, bytes]:
    rng = random.Random(20261207)
    text = user_data.with_instance_files(user_data.TEMPLATE).encode()
    return {
        "empty": b"",
        "one byte": b"x",
        "two": b"ab",
        "one symbol, long": b"a" * 70_000,  # one distance code only; matches of 258
        "random": bytes(rng.randrange(256) for _ in range(5_000)),  # no matches: literals only
        "few symbols": bytes(rng.choice(b"ab \n") for _ in range(20_000)),
        "beyond the window": (bytes(rng.randrange(256) for _ in range(3_000)) * 15)[:40_000],
        "the boot script": text,
    }


@pytest.mark.parametrize("name", list(samples()))
def test_zlib_reads_back_every_byte(name: str) -> None:
    data = samples()[name]
    packed = deflate.gzip(data)
    assert gzip.decompress(packed) == data
    # The raw DEFLATE stream too, as zlib's inflate reads it (no gzip framing).
    assert zlib.decompress(deflate.deflate(data), wbits=-15) == data


def test_the_same_input_gives_the_same_bytes() -> None:
    data = samples()["the boot script"]
    first = deflate.gzip(data)
    assert deflate.gzip(bytes(data)) == first
    # The header carries no time and no name: mtime 0, OS unknown.
    assert first[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def test_it_compresses_about_as_well_as_zlib() -> None:
    """Dynamic Huffman codes and lazy matching: within a few percent of zlib's best on the boot script."""
    data = samples()["the boot script"]
    ours, zlibs = len(deflate.gzip(data)), len(gzip.compress(data, compresslevel=9, mtime=0))
    assert ours <= zlibs * 1.05, (ours, zlibs)


@pytest.mark.parametrize(
    ("frequencies", "limit"),
    [
        ([1] * 286, 15),
        ([2**i for i in range(25)], 15),  # Fibonacci-like skew: unlimited lengths would exceed 15
        ([5, 0, 0, 1], 7),
        ([0, 3], 15),
    ],
)
def test_code_lengths_are_a_complete_prefix_code_within_the_limit(frequencies: list[int], limit: int) -> None:
    lengths = deflate.code_lengths(frequencies, limit)
    used = [n for n in lengths if n]
    assert all(n <= limit for n in lengths)
    assert [bool(n) for n in lengths] == [bool(f) for f in frequencies]
    if len(used) > 1:
        assert sum(2.0**-n for n in used) == 1.0  # Kraft: complete, no code wasted
