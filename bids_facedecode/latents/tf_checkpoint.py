"""Reading TensorFlow checkpoints without TensorFlow (V1 single file and V2 bundle).

Both formats are tables in LevelDB's SSTable layout (TensorFlow's ``core/lib/io/table``):
data blocks of prefix-compressed key/value entries, an index block pointing at them, and a
48-byte footer ending in a magic number. Values are protocol-buffer messages, decoded here by
a minimal wire-format reader:

- V1 (``tf.train.Saver`` with ``SaverDef.V1``, as ``vaegan_celeba.ckpt``): the entry with the
  empty key is a ``SavedTensorSlices`` holding the metadata (name, shape, dtype of each tensor);
  every other entry holds one ``SavedSlice``: name, slice extents, and a ``TensorProto`` with the
  values (``float_val``, ``tensor_content``, ...).
- V2 (``PREFIX.index`` + ``PREFIX.data-*-of-*``): the index maps each name to a
  ``BundleEntryProto`` (dtype, shape, shard, offset, size); the values are the raw
  little-endian bytes in the data shard.

Blocks compressed with Snappy and partitioned V2 variables are not read (TensorFlow writes
checkpoints uncompressed and unpartitioned unless asked); per-block checksums are not checked.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48

# tensorflow/core/framework/types.proto
DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"),
                               4: np.dtype("u1"), 5: np.dtype("<i2"), 6: np.dtype("i1"),
                               9: np.dtype("<i8"), 10: np.dtype("?"), 19: np.dtype("<f2")}
# TensorProto fields holding values of each dtype (proto field number)
_VALUE_FIELD = {1: 5, 2: 6, 3: 7, 4: 7, 5: 7, 6: 7, 9: 10, 10: 11, 19: 13}


class CheckpointFormatError(ValueError):
    """The bytes are not a checkpoint this reader understands (the message says why)."""


# ------------------------------------------------------------------ protobuf wire format
def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointFormatError("varint too long")


def _fields(buf: bytes | memoryview) -> list[tuple[int, int, object]]:
    """``(field number, wire type, value)`` of a message: ints for varint/fixed, bytes for
    length-delimited fields."""
    out = []
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise CheckpointFormatError(f"unsupported protobuf wire type {wire}")
        if pos > n:
            raise CheckpointFormatError("truncated protobuf message")
        out.append((field, wire, value))
    return out


def _message(buf, defaults: dict[int, object]) -> dict[int, object]:
    """The singular fields of a message that ``defaults`` names (field number -> default): the
    last value of each, as protobuf reads a repeated singular field, else its default."""
    out = dict(defaults)
    for field, _, value in _fields(buf):
        if field in out:
            out[field] = value
    return out


def _text(value) -> str:
    return bytes(value).decode("utf-8", "replace")


def _shape(buf) -> tuple[int, ...]:
    """A ``TensorShapeProto``: dims (field 2), each with ``size`` (field 1)."""
    dims = []
    for field, _, value in _fields(buf):
        if field == 2:
            size = next((v for f, _, v in _fields(value) if f == 1), 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)
        elif field == 3 and value:
            raise CheckpointFormatError("tensor of unknown rank")
    return tuple(int(d) for d in dims)


# ------------------------------------------------------------------ SSTable
def _block(data, offset: int, size: int) -> memoryview:
    if offset + size + 5 > len(data):
        raise CheckpointFormatError("block beyond the end of the file")
    kind = data[offset + size]
    if kind != 0:
        raise CheckpointFormatError(f"compressed table block (type {kind}); read it with "
                                    "TensorFlow")
    return memoryview(data)[offset: offset + size]


def _block_entries(block: memoryview) -> list[tuple[bytes, memoryview]]:
    if len(block) < 4:
        raise CheckpointFormatError("table block too small")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise CheckpointFormatError("corrupt table block")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + bytes(block[pos:pos + non_shared])
        pos += non_shared
        entries.append((key, block[pos:pos + vlen]))
        pos += vlen
    return entries


def read_table(data) -> list[tuple[bytes, memoryview]]:
    """All ``(key, value)`` entries of an SSTable held in ``data`` (bytes or mmap)."""
    if len(data) < FOOTER_SIZE:
        raise CheckpointFormatError("file too small for a table")
    footer = memoryview(data)[len(data) - FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise CheckpointFormatError("no table magic number at the end of the file")
    _, pos = _varint(footer, 0)  # metaindex offset
    _, pos = _varint(footer, pos)  # metaindex size
    offset, pos = _varint(footer, pos)
    size, _ = _varint(footer, pos)
    entries = []
    for _, handle in _block_entries(_block(data, offset, size)):
        b_off, p = _varint(handle, 0)
        b_size, _ = _varint(handle, p)
        entries += _block_entries(_block(data, b_off, b_size))
    return entries


# ------------------------------------------------------------------ checkpoints
@dataclass
class _V1Slice:
    extents: list[tuple[int, int]]  # (start, length); length -1 = the whole dimension
    proto: memoryview  # TensorProto


class CheckpointReader:
    """Variables of a V1 or V2 checkpoint: :attr:`shapes` and :meth:`get_tensor`.

    Parameters
    ----------
    prefix : path-like
        The V1 file, or the V2 prefix (``PREFIX.index`` and ``PREFIX.data-*`` beside it).
    """

    def __init__(self, prefix: str | Path):
        prefix = Path(prefix)
        index = Path(f"{prefix}.index")
        self.format = "V2" if index.is_file() else "V1"
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, int] = {}
        if self.format == "V2":
            self._open_v2(prefix, index)
        else:
            self._open_v1(prefix)

    # V2 -------------------------------------------------------------------
    def _open_v2(self, prefix: Path, index: Path) -> None:
        self._entries: dict[str, tuple[int, int, int]] = {}
        n_shards = 1
        for key, value in read_table(index.read_bytes()):
            if key == b"":
                for field, _, v in _fields(value):
                    if field == 1:
                        n_shards = int(v)
                    elif field == 2 and v != 0:
                        raise CheckpointFormatError("big-endian checkpoint")
                continue
            name = key.decode("utf-8", "replace")
            # BundleEntryProto: dtype, shape, shard_id, offset, size; 7: slices (partitioned)
            m = _message(value, {1: 0, 2: None, 3: 0, 4: 0, 5: 0, 7: None})
            if m[7] is not None:
                raise CheckpointFormatError(f"partitioned variable '{name}'")
            self.shapes[name] = _shape(m[2]) if m[2] is not None else ()
            self.dtypes[name] = int(m[1])
            self._entries[name] = (int(m[3]), int(m[4]), int(m[5]))
        self._shards = [Path(f"{prefix}.data-{i:05d}-of-{n_shards:05d}") for i in range(n_shards)]

    def _v2_tensor(self, name: str) -> np.ndarray:
        shard, offset, size = self._entries[name]
        path = self._shards[shard]
        if not path.is_file():
            raise CheckpointFormatError(f"data file {path.name} missing")
        dt = self._dtype(name)
        if offset + size > path.stat().st_size or \
                size != dt.itemsize * int(np.prod(self.shapes[name])):
            raise CheckpointFormatError(f"'{name}': its bytes do not fit its shape")
        values = np.fromfile(path, dt, count=size // dt.itemsize, offset=offset)
        return values.reshape(self.shapes[name])

    # V1 -------------------------------------------------------------------
    def _open_v1(self, path: Path) -> None:
        entries = read_table(path.read_bytes())
        if not entries or entries[0][0] != b"":
            raise CheckpointFormatError("no tensor-slice metadata (not a V1 checkpoint)")
        self._slices: dict[str, list[_V1Slice]] = {}
        for field, _, value in _fields(entries[0][1]):
            if field != 1:
                continue
            for f, _, meta in _fields(value):
                if f != 1:
                    continue
                m = _message(meta, {1: b"", 2: None, 3: 0})  # name, shape, dtype
                name = _text(m[1])
                self.shapes[name] = _shape(m[2]) if m[2] is not None else ()
                self.dtypes[name] = int(m[3])
                self._slices[name] = []
        for _, value in entries[1:]:
            for field, _, saved in _fields(value):
                if field != 2:
                    continue
                m = _message(saved, {1: b"", 2: None, 3: None})  # name, slice, data
                name, proto = _text(m[1]), m[3]
                extents = _extents(m[2]) if m[2] is not None else []
                if name not in self._slices or proto is None:
                    raise CheckpointFormatError(f"tensor slice of unknown tensor '{name}'")
                self._slices[name].append(_V1Slice(extents, proto))

    def _v1_tensor(self, name: str) -> np.ndarray:
        shape, dt = self.shapes[name], self._dtype(name)
        out = np.zeros(shape, dt)
        covered = 0
        for sl in self._slices[name]:
            index = tuple(slice(0, d) if length < 0 else slice(start, start + length)
                          for (start, length), d in
                          zip(sl.extents or [(0, -1)] * len(shape), shape, strict=True))
            target = out[index]
            values = _tensor_values(sl.proto, self.dtypes[name], target.size)
            out[index] = values.reshape(target.shape)
            covered += target.size
        if covered != out.size:
            raise CheckpointFormatError(f"'{name}': slices cover {covered} of {out.size} values")
        return out

    # common ---------------------------------------------------------------
    def _dtype(self, name: str) -> np.dtype:
        code = self.dtypes[name]
        if code not in DTYPES:
            raise CheckpointFormatError(f"'{name}': unsupported dtype code {code}")
        return DTYPES[code]

    def get_tensor(self, name: str) -> np.ndarray:
        """The variable ``name`` as an ndarray of its shape and dtype."""
        if name not in self.shapes:
            raise KeyError(name)
        return self._v2_tensor(name) if self.format == "V2" else self._v1_tensor(name)

    def close(self) -> None:
        """Drop the file's contents held in memory (V1)."""
        self._slices = {}


def _extents(buf) -> list[tuple[int, int]]:
    """A ``TensorSliceProto``: per dimension ``(start, length)``, length -1 for all of it."""
    out = []
    for field, _, extent in _fields(buf):
        if field == 1:
            m = _message(extent, {1: 0, 2: -1})  # start, length (-1: all of it)
            out.append((int(m[1]), int(m[2])))
    return out


def _tensor_values(proto, dtype: int, count: int) -> np.ndarray:
    """Values of a ``TensorProto``: ``tensor_content`` or the packed ``*_val`` field."""
    dt = DTYPES[dtype]
    field_no = _VALUE_FIELD[dtype]
    parts = []
    for field, wire, v in _fields(proto):
        if field == 4:
            return np.frombuffer(bytes(v), dt)[:count].copy() if count else np.zeros(0, dt)
        if field == field_no:
            parts.append((wire, v))
    if not parts:
        return np.zeros(count, dt)  # all zeros are written as no values
    if dtype in (1, 2):  # float, double: fixed width
        if all(w == 2 for w, _ in parts):
            values = np.frombuffer(b"".join(bytes(v) for _, v in parts), dt)
        else:  # unpacked: one fixed-width field per value
            raw = [struct.pack("<I" if dtype == 1 else "<Q", v) for _, v in parts]
            values = np.frombuffer(b"".join(raw), dt)
    else:  # varint-encoded integers and bools (half floats as their bit patterns)
        ints: list[int] = []
        for wire, v in parts:
            if wire == 2:
                pos = 0
                while pos < len(v):
                    x, pos = _varint(v, pos)
                    ints.append(x)
            else:
                ints.append(int(v))
        ints = [x - (1 << 64) if x >= 1 << 63 else x for x in ints]
        if dtype == 19:
            values = np.array(ints, np.uint16).view(np.float16)
        else:
            values = np.array(ints, np.int64).astype(dt)
    if len(values) == 1 and count > 1:  # a constant slice is stored as one value
        values = np.full(count, values[0], dt)
    if len(values) != count:
        raise CheckpointFormatError(f"{len(values)} values where the slice needs {count}")
    return values
