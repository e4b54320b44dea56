"""Row numbers a plan located in a file, held as one sorted array and written compactly.

A deletion list of a million people locates millions of rows. As JSON integers they made the
plan file tens of bytes a row and cost a Python object each wherever they were read; here
they are a sorted, distinct int64 array, and a plan writes them as one text:
`rows:<dtype>:<base64 of the zlib-compressed gaps>` (the first gap is the first row number;
the gaps of sorted rows are small, so they are stored in the narrowest unsigned type that
holds them). Plans written before this keep their lists, which read as tuples as before.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Iterator

import numpy as np

PREFIX = "rows:"
_TYPES = ("u1", "u2", "u4", "u8")


class RowNumbersError(ValueError):
    """A written form that is not row numbers this optout wrote."""


class RowNumbers:
    """Sorted, distinct, non-negative row numbers (immutable)."""

    __slots__ = ("_text", "array")

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.array.setflags(write=False)
        self._text: str | None = None

    @classmethod
    def of(cls, rows: Iterable[int] | np.ndarray | RowNumbers) -> RowNumbers:
        """The distinct row numbers of `rows`, sorted."""
        if isinstance(rows, RowNumbers):
            return rows
        array = sorted_distinct(np.asarray(rows if isinstance(rows, np.ndarray)
                                           else list(rows), dtype=np.int64))
        if array.size and array[0] < 0:
            raise RowNumbersError("row numbers are never negative")
        return cls(array)

    @classmethod
    def decode(cls, text: str) -> RowNumbers:
        """Row numbers from their written form (RowNumbersError when it is not one)."""
        try:
            prefix, kind, data = text.split(":", 2)
            if f"{prefix}:" != PREFIX or kind not in _TYPES:
                raise RowNumbersError(f"not written row numbers ({text[:12]!r}…)")
            gaps = np.frombuffer(zlib.decompress(base64.b64decode(data, validate=True)),
                                 dtype=np.dtype(kind).newbyteorder("<"))
        except (ValueError, zlib.error, binascii.Error) as exc:
            raise RowNumbersError(f"row numbers that do not decode: {exc}") from None
        if gaps.size > 1 and not gaps[1:].all():
            raise RowNumbersError("row numbers that are not distinct")
        array = np.cumsum(gaps.astype(np.uint64))
        if array.size and array[-1] >= 1 << 63:
            raise RowNumbersError("row numbers out of range")
        return cls(array.astype(np.int64))

    def encode(self) -> str:
        """The written form (computed once)."""
        if self._text is None:
            gaps = np.diff(self.array, prepend=0).astype(np.uint64)
            top = int(gaps.max()) if gaps.size else 0
            kind = next(k for k in _TYPES if top < 1 << (8 * np.dtype(k).itemsize))
            packed = zlib.compress(gaps.astype(np.dtype(kind).newbyteorder("<")).tobytes(), 1)
            self._text = f"{PREFIX}{kind}:{base64.b64encode(packed).decode()}"
        return self._text

    __str__ = encode  # how a plan's JSON writes them (`optout.model.plan._plain`)

    def __repr__(self) -> str:
        return f"RowNumbers({len(self)} rows)"

    def __len__(self) -> int:
        return int(self.array.size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.array.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowNumbers):
            return np.array_equal(self.array, other.array)
        if isinstance(other, tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.array.tobytes())


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (`np.unique` of NumPy 2.4 takes seconds on ten million
    integers; a sort and a comparison with the neighbour take a tenth of that)."""
    ordered = np.sort(values, kind="stable")
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
