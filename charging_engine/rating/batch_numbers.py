"""Numbers and prefixes as padded integers, for matching whole arrays of CDRs at once.

A number of n digits is padded to 15 (``V = digits * 10**(15 - n)``, so leading zeros keep
their place) and a prefix p of L digits covers ``[p * 10**(15-L), (p+1) * 10**(15-L))``: the
number starts with the prefix exactly when it has at least L digits and V lies in that range.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from charging_engine.rating.numbers import MAX_DIGITS, NumberError, normalize

I64: TypeAlias = npt.NDArray[np.int64]

POW10: Final = np.array([10**k for k in range(MAX_DIGITS + 1)], dtype=np.int64)
_WIDTH: Final = MAX_DIGITS + 1  # one more than a number may have: longer strings show up
_MIXED: Final = -2  # a lookup-table range that spans several elementary intervals
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


@dataclass(frozen=True, slots=True)
class Destinations:
    """Destination numbers encoded for matching: 15-digit padded values and digit counts."""

    padded: I64
    lengths: I64

    def __len__(self) -> int:
        return len(self.padded)

    @classmethod
    def of(cls, numbers: Destinations | Sequence[str] | npt.NDArray[Any]) -> Destinations:
        """Encode digit strings (or a numpy str array), or integers (see ``from_ints``)."""
        if isinstance(numbers, Destinations):
            return numbers
        if isinstance(numbers, np.ndarray) and numbers.dtype.kind in "iu":
            return cls.from_ints(numbers)
        return cls.from_strings(numbers)

    @classmethod
    def from_strings(cls, numbers: Sequence[str] | npt.NDArray[np.str_]) -> Destinations:
        """Digit strings, read exactly as ``Tariff.find`` reads them: what is not plain digits
        (a "+", a leading "00", separators) goes through ``normalize``, and a non-number
        raises NumberError naming its index."""
        originals: Sequence[Any] | npt.NDArray[np.str_]
        if isinstance(numbers, np.ndarray):
            if numbers.dtype.kind != "U" or numbers.ndim != 1:
                raise TypeError("numbers must be a 1-D str array, integers or a str sequence")
            originals, arr = numbers, numbers.astype(f"<U{_WIDTH}")
        else:
            originals = list(numbers)
            try:
                joined: str | None = "".join(originals)
            except TypeError:  # a non-str element: normalize() names it below
                joined = None
            if joined is None or "\x00" in joined:  # numpy would drop trailing NULs
                originals = [_normalized(i, s) for i, s in enumerate(originals)]
                joined = "".join(originals)
            kind = "S" if joined.isascii() else "U"  # bytes: a quarter of the memory
            arr = np.array(originals, dtype=f"{kind}{_WIDTH}").reshape(len(originals))
        lengths = np.char.str_len(arr).astype(np.int64)
        padded, valid = _parse(arr, lengths)
        bad = np.flatnonzero(~valid)
        for i in bad.tolist():
            digits = _normalized(i, originals[i])
            padded[i] = int(digits) * 10 ** (MAX_DIGITS - len(digits))
            lengths[i] = len(digits)
        return cls(padded, lengths)

    @classmethod
    def from_ints(
        cls, values: npt.ArrayLike, lengths: npt.ArrayLike | None = None
    ) -> Destinations:
        """Numbers as integers: the digits of ``str(value)``, or ``lengths`` digits with
        leading zeros (value 44 with length 4 is "0044"). These are final E.164 digits,
        matched as given: unlike strings, a leading "00" is not read as the international
        prefix."""
        v = int_array("numbers", values)
        if v.size and (int(v.min()) < 0 or int(v.max()) >= 10**MAX_DIGITS):
            i = int(np.flatnonzero((v < 0) | (v >= 10**MAX_DIGITS))[0])
            raise NumberError(f"numbers[{i}] = {int(v[i])} is not a number of 1-15 digits")
        if lengths is None:
            n = np.searchsorted(POW10[1:], v, side="right").astype(np.int64) + 1
        else:
            n = int_array("lengths", lengths)
            same_length(("numbers", v), ("lengths", n))
            wrong = (n < 1) | (n > MAX_DIGITS)
            wrong[~wrong] |= v[~wrong] >= POW10[n[~wrong]]
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise NumberError(f"numbers[{i}] = {int(v[i])} does not fit {int(n[i])} digits")
        return cls(v * POW10[MAX_DIGITS - n], n)

class PrefixIndex:
    """Longest-prefix lookup over padded numbers, with the parent chain of every prefix.

    Prefix ranges nest; their boundaries cut the number line into elementary intervals, each
    owned by its longest prefix. ``deepest`` finds a number's interval: through a direct table
    on the first 6 digits, then on the next 2, and ``searchsorted`` only for what is still
    ambiguous (prefixes of 9+ digits), since a binary search per CDR costs more than the rest
    of the rating.
    """

    __slots__ = ("_block", "_bounds", "_owner", "_top", "length", "parent")
    _top: npt.NDArray[np.int32] | None
    _block: npt.NDArray[np.int32] | None

    TOP: Final = 6  # digits of the first table (10**6 entries)
    SUB: Final = 2  # digits of each second-level block (100 entries)
    SMALL: Final = 4096  # fewer bounds: searchsorted stays in cache, no tables

    def __init__(self, prefixes: list[str]) -> None:
        """``prefixes``: distinct digit strings, shortest first (ids are their positions)."""
        if len(set(prefixes)) != len(prefixes) or any(
            len(a) > len(b) for a, b in itertools.pairwise(prefixes)
        ):
            raise ValueError("prefixes must be distinct and sorted shortest first")
        self.length = np.array([len(p) for p in prefixes], dtype=np.int64)
        lo = np.array([int(p) * 10 ** (MAX_DIGITS - len(p)) for p in prefixes], dtype=np.int64)
        hi = lo + POW10[MAX_DIGITS - self.length]
        self._bounds = np.unique(np.concatenate([lo, hi]))
        self._owner = np.full(len(self._bounds), -1, dtype=np.int64)
        self.parent = np.full(len(prefixes), -1, dtype=np.int64)
        # Paint each prefix's intervals, shorter prefixes first: what a prefix overwrites at
        # its start is its parent (the longest prefix containing it).
        first = np.searchsorted(self._bounds, lo)
        last = np.searchsorted(self._bounds, hi)
        for k, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
            self.parent[k] = self._owner[a]
            self._owner[a:b] = k
        self._top = self._block = None
        if len(self._bounds) > self.SMALL:
            width = POW10[MAX_DIGITS - self.TOP]
            top = self._table(np.arange(10**self.TOP, dtype=np.int64) * width, width)
            mixed = np.flatnonzero(top == _MIXED)
            step = POW10[MAX_DIGITS - self.TOP - self.SUB]
            subs = (mixed[:, None] * width
                    + np.arange(10**self.SUB, dtype=np.int64) * step).ravel()  # fmt: skip
            top[mixed] = _MIXED - 1 - np.arange(len(mixed))  # -3, -4, ...: block numbers
            self._top = top.astype(np.int32)
            self._block = self._table(subs, step).astype(np.int32)

    def _table(self, starts: I64, width: np.int64) -> I64:
        """Owner of each [start, start + width) range, or _MIXED when it spans intervals."""
        a = np.searchsorted(self._bounds, starts, side="right") - 1
        b = np.searchsorted(self._bounds, starts + (width - 1), side="right") - 1
        owners = np.where(a >= 0, self._owner[np.maximum(a, 0)], -1)
        return np.where(a == b, owners, _MIXED)

    def deepest(self, padded: I64) -> I64:
        """The longest prefix id covering each number's padded value, -1 for none."""
        if self._top is None or self._block is None:
            return self._search(padded)
        owner: I64 = self._top[padded // POW10[MAX_DIGITS - self.TOP]].astype(np.int64)
        deeper = np.flatnonzero(owner < -1)
        if deeper.size:
            block = _MIXED - 1 - owner[deeper]
            sub = (padded[deeper] // POW10[MAX_DIGITS - self.TOP - self.SUB]) % 10**self.SUB
            found = self._block[block * 10**self.SUB + sub]
            still = found == _MIXED
            if still.any():
                found[still] = self._search(padded[deeper[still]])
            owner[deeper] = found
        return owner

    def _search(self, padded: I64) -> I64:
        at = np.searchsorted(self._bounds, padded, side="right") - 1
        return np.where(at >= 0, self._owner[np.maximum(at, 0)], -1)



def _normalized(i: int, number: object) -> str:
    try:
        return normalize(number)  # type: ignore[arg-type]  # normalize rejects non-str
    except NumberError as exc:
        raise NumberError(f"numbers[{i}]: {exc}") from None


def int_array(name: str, values: npt.ArrayLike) -> I64:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got {arr.ndim} dimension(s)")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        what = "integers within int64" if arr.dtype.kind == "O" else f"integers, not {arr.dtype}"
        raise TypeError(f"{name} must be {what}")
    if arr.dtype == np.uint64 and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds a value beyond int64")
    return arr.astype(np.int64, copy=False)


def same_length(*arrays: tuple[str, npt.NDArray[Any]]) -> None:
    sizes = {name: len(a) for name, a in arrays}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"arrays differ in length: {sizes}")




def _parse(arr: npt.NDArray[Any], lengths: I64) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Padded values of a fixed-width str/bytes array, and which rows are plain digit strings
    of 1-15 digits not starting with "00" (the others are left to ``normalize``)."""
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    code = np.dtype(np.uint8 if arr.dtype.kind == "S" else np.uint32)
    chars: npt.NDArray[np.unsignedinteger[Any]] = (
        np.ascontiguousarray(arr).view(code).reshape(n, _WIDTH)
    )
    digit = chars - code.type(48)  # wraps below '0'
    is_digit = digit < 10
    digits = (digit * is_digit).astype(np.uint8)  # non-digits (and padding) count as 0
    valid = (lengths >= 1) & (lengths <= MAX_DIGITS)
    valid &= (digits[:, 0] != 0) | (digits[:, 1] != 0) | ~is_digit[:, 0] | ~is_digit[:, 1]
    if _LITTLE_ENDIAN:  # eight digits per uint64 lane, SWAR (as simdjson parses numbers)
        flags = is_digit.view(np.uint8).view(np.uint64)  # bytes of 0/1: sum them in place
        count = (flags * np.uint64(0x0101010101010101)) >> np.uint64(56)
        valid &= (count[:, 0] + count[:, 1]).astype(np.int64) == lengths
        lanes = digits.view(np.uint64)
        v = (lanes * np.uint64(2561)) >> np.uint64(8)
        v = ((v & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
        v = ((v & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
        v = v & np.uint64(0xFFFFFFFF)
        sixteen = v[:, 0].astype(np.int64) * 10**8 + v[:, 1].astype(np.int64)
    else:
        valid &= is_digit.sum(axis=1) == lengths
        sixteen = digits.astype(np.int64) @ POW10[::-1][:_WIDTH]
    return sixteen // 10, valid  # the 16th digit is 0 on every valid row


__all__ = ["POW10", "Destinations", "PrefixIndex", "int_array", "same_length"]
