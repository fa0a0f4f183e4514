"""gzip, written out here so that the same text always gives the same bytes.

The MLflow boot script no longer fits EC2's 16 KB of user data as text; cloud-init takes
gzip-compressed user data and decompresses it before running it. zlib's output is not a function of
the input alone: it depends on the zlib build (zlib-ng, used by some distributions, compresses
differently), so a launch template synthesized on another machine could differ, and a differing
launch template rolls every instance. This module's output depends on the input only:

- LZ77 (RFC 1951): hash chains over 3-byte prefixes, at most ``CHAIN`` candidates per position, the
  first longest match, one step of lazy matching (a literal when the next position matches longer);
- one dynamic-Huffman block: code lengths by package-merge (optimal lengths within DEFLATE's 15- and
  7-bit limits; ties broken by symbol), canonical codes, the code lengths run-length coded;
- a gzip member (RFC 1952) with mtime 0 and OS "unknown".

Any gzip reader decompresses it; ``tests/constructs/test_deflate.py`` checks that zlib does, byte
for byte, on the boot scripts and on edge cases.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator, Sequence

WINDOW = 32 * 1024
MIN_MATCH, MAX_MATCH = 3, 258
# Candidates tried per position: more compresses a little better and costs time, nothing else.
CHAIN = 48
END_OF_BLOCK = 256

# (base length, extra bits) of length codes 257..285, RFC 1951 3.2.5.
_LENGTHS = [
    (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 1), (13, 1), (15, 1), (17, 1),
    (19, 2), (23, 2), (27, 2), (31, 2), (35, 3), (43, 3), (51, 3), (59, 3), (67, 4), (83, 4), (99, 4),
    (115, 4), (131, 5), (163, 5), (195, 5), (227, 5), (258, 0),
]  # fmt: skip
# (base distance, extra bits) of distance codes 0..29.
_DISTANCES = [
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2), (17, 3), (25, 3), (33, 4), (49, 4),
    (65, 5), (97, 5), (129, 6), (193, 6), (257, 7), (385, 7), (513, 8), (769, 8), (1025, 9), (1537, 9),
    (2049, 10), (3073, 10), (4097, 11), (6145, 11), (8193, 12), (12289, 12), (16385, 13), (24577, 13),
]  # fmt: skip
# The order in which the code-length code's lengths are sent (RFC 1951 3.2.7).
_CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)


def _table(bases: Sequence[tuple[int, int]], largest: int) -> list[int]:
    """value -> index of the code whose range holds it."""
    out, code = [0] * (largest + 1), 0
    for value in range(bases[0][0], largest + 1):
        while code + 1 < len(bases) and bases[code + 1][0] <= value:
            code += 1
        out[value] = code
    return out


_LENGTH_CODE = _table(_LENGTHS, MAX_MATCH)
_LENGTH_CODE[MAX_MATCH] = len(_LENGTHS) - 1
_DISTANCE_CODE = _table(_DISTANCES, WINDOW)

Token = tuple[int, int]  # (literal byte, 0) or (length, distance)


def _tokens(data: bytes) -> Iterator[Token]:
    """LZ77 with one step of lazy matching."""
    chains: dict[bytes, list[int]] = {}
    size = len(data)

    def longest(position: int) -> tuple[int, int]:
        if position + MIN_MATCH > size:
            return 0, 0
        candidates = chains.get(data[position : position + MIN_MATCH])
        if not candidates:
            return 0, 0
        best, best_distance, limit = 0, 0, min(MAX_MATCH, size - position)
        for start in reversed(candidates[-CHAIN:]):
            distance = position - start
            if distance > WINDOW:
                break
            if data[start + best] != data[position + best]:  # cannot beat the best: skip
                continue
            length = MIN_MATCH
            while length < limit and data[start + length] == data[position + length]:
                length += 1
            if length > best:
                best, best_distance = length, distance
                if length == limit:
                    break
        return (best, best_distance) if best >= MIN_MATCH else (0, 0)

    def insert(position: int) -> None:
        if position + MIN_MATCH <= size:
            chains.setdefault(data[position : position + MIN_MATCH], []).append(position)

    position = 0
    pending = longest(0)
    while position < size:
        length, distance = pending
        if length and position + 1 < size:
            insert(position)
            following = longest(position + 1)
            if following[0] > length:  # lazy: a literal now, the longer match next
                yield data[position], 0
                position += 1
                pending = following
                continue
            for p in range(position + 1, position + length):
                insert(p)
            yield length, distance
            position += length
        elif length:
            yield length, distance
            position += length
        else:
            insert(position)
            yield data[position], 0
            position += 1
        pending = longest(position) if position < size else (0, 0)


def code_lengths(frequencies: Sequence[int], limit: int) -> list[int]:
    """Optimal prefix-code lengths of at most ``limit`` bits (package-merge); unused symbols get 0,
    a lone symbol 1 bit. Equal weights keep symbol order, so the result is a function of the input."""
    used = [(f, s) for s, f in enumerate(frequencies) if f]
    lengths = [0] * len(frequencies)
    if len(used) <= 1:
        for _, s in used:
            lengths[s] = 1
        return lengths
    leaves: list[tuple[int, tuple[int, ...]]] = [(f, (s,)) for f, s in sorted(used)]
    items = leaves
    for _ in range(limit - 1):
        packages = [
            (items[i][0] + items[i + 1][0], items[i][1] + items[i + 1][1])
            for i in range(0, len(items) - 1, 2)
        ]
        items = sorted(leaves + packages, key=lambda item: item[0])
    for _, symbols in items[: 2 * len(used) - 2]:
        for s in symbols:
            lengths[s] += 1
    return lengths


def canonical(lengths: Sequence[int]) -> list[int]:
    """The canonical codes of ``lengths`` (RFC 1951 3.2.2)."""
    largest = max(lengths, default=0)
    count = [0] * (largest + 1)
    for length in lengths:
        if length:
            count[length] += 1
    next_code, code = [0] * (largest + 2), 0
    for bits in range(1, largest + 1):
        code = (code + count[bits - 1]) << 1
        next_code[bits] = code
    codes = [0] * len(lengths)
    for symbol, length in enumerate(lengths):
        if length:
            codes[symbol] = next_code[length]
            next_code[length] += 1
    return codes


class _Bits:
    """Bits packed least significant first, as DEFLATE stores them."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, bits: int) -> None:
        self.acc |= value << self.count
        self.count += bits
        while self.count >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.count -= 8

    def code(self, code: int, bits: int) -> None:
        """A Huffman code: sent most significant bit first."""
        reversed_code = 0
        for _ in range(bits):
            reversed_code = (reversed_code << 1) | (code & 1)
            code >>= 1
        self.write(reversed_code, bits)

    def flush(self) -> bytes:
        if self.count:
            self.out.append(self.acc & 0xFF)
            self.acc = self.count = 0
        return bytes(self.out)


def _run_length(lengths: Sequence[int]) -> list[tuple[int, int, int]]:
    """Code lengths as (code-length symbol, extra value, extra bits), RFC 1951 3.2.7."""
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(lengths):
        value, run = lengths[i], 1
        while i + run < len(lengths) and lengths[i + run] == value:
            run += 1
        i += run
        if value == 0:
            while run >= 11:
                n = min(run, 138)
                out.append((18, n - 11, 7))
                run -= n
            if run >= 3:
                out.append((17, run - 3, 3))
                run = 0
        else:
            out.append((value, 0, 0))
            run -= 1
            while run >= 3:
                n = min(run, 6)
                out.append((16, n - 3, 2))
                run -= n
        out.extend((value, 0, 0) for _ in range(run))
    return out


def deflate(data: bytes) -> bytes:
    """One final dynamic-Huffman block (BFINAL=1, BTYPE=10)."""
    tokens = list(_tokens(data))
    literal_frequency, distance_frequency = [0] * 286, [0] * 30
    for value, distance in tokens:
        if distance:
            literal_frequency[257 + _LENGTH_CODE[value]] += 1
            distance_frequency[_DISTANCE_CODE[distance]] += 1
        else:
            literal_frequency[value] += 1
    literal_frequency[END_OF_BLOCK] = 1
    if not any(distance_frequency):
        distance_frequency[0] = 1  # at least one distance code is sent
    literal_lengths = code_lengths(literal_frequency, 15)
    distance_lengths = code_lengths(distance_frequency, 15)
    hlit = max(257, max(i for i, n in enumerate(literal_lengths) if n) + 1)
    hdist = max(1, max(i for i, n in enumerate(distance_lengths) if n) + 1)
    runs = _run_length(literal_lengths[:hlit] + distance_lengths[:hdist])
    length_frequency = [0] * 19
    for symbol, _, _ in runs:
        length_frequency[symbol] += 1
    length_lengths = code_lengths(length_frequency, 7)
    hclen = max(4, max(i for i, symbol in enumerate(_CODE_LENGTH_ORDER) if length_lengths[symbol]) + 1)

    bits = _Bits()
    bits.write(1, 1)  # BFINAL
    bits.write(2, 2)  # BTYPE: dynamic Huffman codes
    bits.write(hlit - 257, 5)
    bits.write(hdist - 1, 5)
    bits.write(hclen - 4, 4)
    for symbol in _CODE_LENGTH_ORDER[:hclen]:
        bits.write(length_lengths[symbol], 3)
    length_codes = canonical(length_lengths)
    for symbol, extra, extra_bits in runs:
        bits.code(length_codes[symbol], length_lengths[symbol])
        if extra_bits:
            bits.write(extra, extra_bits)
    literal_codes, distance_codes = canonical(literal_lengths), canonical(distance_lengths)
    for value, distance in tokens:
        if not distance:
            bits.code(literal_codes[value], literal_lengths[value])
            continue
        code = _LENGTH_CODE[value]
        bits.code(literal_codes[257 + code], literal_lengths[257 + code])
        base, extra_bits = _LENGTHS[code]
        if extra_bits:
            bits.write(value - base, extra_bits)
        code = _DISTANCE_CODE[distance]
        bits.code(distance_codes[code], distance_lengths[code])
        base, extra_bits = _DISTANCES[code]
        if extra_bits:
            bits.write(distance - base, extra_bits)
    bits.code(literal_codes[END_OF_BLOCK], literal_lengths[END_OF_BLOCK])
    return bits.flush()


def gzip(data: bytes) -> bytes:
    """A gzip member (RFC 1952): no name, mtime 0, OS unknown (255), CRC-32 and size."""
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\xff"
    trailer = struct.pack("<II", binascii.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return header + deflate(data) + trailer
