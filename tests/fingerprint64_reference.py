"""FarmHash Fingerprint64 in plain Python: the tests' own route to the hash buckets, independent of TensorFlow.

``tf.strings.to_hash_bucket_fast`` and ``tf.lookup.StaticVocabularyTable`` send a string to bucket
``Fingerprint64(utf8 bytes) mod B``, where TensorFlow's ``Fingerprint64`` is FarmHash's
``util::Fingerprint64``, i.e. ``farmhashna::Hash64`` (google/farmhash, ``src/farmhash.cc``). This file
writes that function again from its published algorithm, for strings of up to 64 bytes (its
``HashLen0to16``, ``HashLen17to32`` and ``HashLen33to64`` branches), with Python integers masked to
64 bits. It imports nothing from TensorFlow or mmrec_tf, so a test that compares the project's
buckets with it checks them against a second implementation instead of against the same call.

Example:
>>> fingerprint64(b"") == K2  # FarmHash returns k2 for the empty string
True
>>> [fingerprint64(s) % 1000 for s in (b"x", b"y", b"user-1")]
[970, 105, 116]
"""

from __future__ import annotations

MASK = (1 << 64) - 1
K0, K1, K2 = 0xC3A5C85C97CB3127, 0xB492B66FBE98F273, 0x9AE16A3B2F90404F


def _rotate(value: int, shift: int) -> int:
    """Rotate a 64-bit value right by ``shift`` bits."""
    return value if shift == 0 else ((value >> shift) | (value << (64 - shift))) & MASK


def _fetch64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")


def _fetch32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "little")


def _hash_len16(u: int, v: int, mul: int) -> int:
    a = ((u ^ v) * mul) & MASK
    a ^= a >> 47
    b = ((v ^ a) * mul) & MASK
    b ^= b >> 47
    return (b * mul) & MASK


def _first_mix(a: int, b: int, c: int, mul: int) -> tuple[int, int]:
    """The two values the 17..32 and 33..64 byte branches feed their first ``HashLen16`` with."""
    return ((_rotate((a + b) & MASK, 43) + _rotate(c, 30)) & MASK,
            (a + _rotate((b + K2) & MASK, 18) + c) & MASK)


def fingerprint64(data: bytes) -> int:
    """``farmhashna::Hash64(data)`` for ``len(data) <= 64``."""
    n = len(data)
    if n > 64:
        raise ValueError(f"this reference covers strings of at most 64 bytes, got {n}")
    mul = (K2 + 2 * n) & MASK
    if n > 32:
        a, b = (_fetch64(data, 0) * K2) & MASK, _fetch64(data, 8)
        c, d = (_fetch64(data, n - 8) * mul) & MASK, (_fetch64(data, n - 16) * K2) & MASK
        y, second = _first_mix(a, b, c, mul)
        y = (y + d) & MASK
        z = _hash_len16(y, second, mul)
        e, f = (_fetch64(data, 16) * mul) & MASK, _fetch64(data, 24)
        g = ((y + _fetch64(data, n - 32)) * mul) & MASK
        h = ((z + _fetch64(data, n - 24)) * mul) & MASK
        return _hash_len16((_rotate((e + f) & MASK, 43) + _rotate(g, 30) + h) & MASK,
                           (e + _rotate((f + a) & MASK, 18) + g) & MASK, mul)
    if n > 16:
        a, b = (_fetch64(data, 0) * K1) & MASK, _fetch64(data, 8)
        c, d = (_fetch64(data, n - 8) * mul) & MASK, (_fetch64(data, n - 16) * K2) & MASK
        first, second = _first_mix(a, b, c, mul)
        return _hash_len16((first + d) & MASK, second, mul)
    if n >= 8:
        a, b = (_fetch64(data, 0) + K2) & MASK, _fetch64(data, n - 8)
        return _hash_len16((_rotate(b, 37) * mul + a) & MASK, ((_rotate(a, 25) + b) * mul) & MASK, mul)
    if n >= 4:
        return _hash_len16((n + (_fetch32(data, 0) << 3)) & MASK, _fetch32(data, n - 4), mul)
    if n > 0:
        y = data[0] + (data[n >> 1] << 8)
        z = n + (data[n - 1] << 2)
        mixed = ((y * K2) ^ (z * K0)) & MASK
        return ((mixed ^ (mixed >> 47)) * K2) & MASK
    return K2
