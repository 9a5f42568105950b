"""A tiny protobuf wire-format encoder/decoder, enough for ttrpc envelopes.

Only what ttrpc's Request/Response/Status/KeyValue messages need: varints
(wire type 0) and length-delimited fields (wire type 2) are encoded; on
decoding, fixed32/fixed64 fields and any unknown field are skipped.
"""

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5

_UINT64_MASK = (1 << 64) - 1


class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def encode_varint(value: int) -> bytes:
    """Encode an integer as a base-128 varint (negatives as two's complement 64-bit)."""
    value &= _UINT64_MASK
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at pos; return (value, new position)."""
    result = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & _UINT64_MASK, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint too long")


def to_int64(value: int) -> int:
    """Interpret a decoded uint64 varint as a signed int64."""
    return value - (1 << 64) if value >= 1 << 63 else value


def tag(field: int, wire_type: int) -> bytes:
    return encode_varint((field << 3) | wire_type)


def field_varint(field: int, value: int) -> bytes:
    return tag(field, WIRE_VARINT) + encode_varint(value)


def field_bytes(field: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return tag(field, WIRE_LEN) + encode_varint(len(value)) + bytes(value)


def iter_fields(data: bytes | memoryview):
    """Yield (field number, wire type, value) for each field of a message.

    value is an int for varints and bytes for length-delimited fields;
    fixed32/fixed64 fields are yielded as raw bytes. Groups (wire types 3/4)
    are rejected as malformed: nothing ttrpc sends uses them.
    """
    data = memoryview(data)
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = decode_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise DecodeError("field number 0")
        if wire_type == WIRE_VARINT:
            value, pos = decode_varint(data, pos)
        elif wire_type == WIRE_LEN:
            length, pos = decode_varint(data, pos)
            if pos + length > end:
                raise DecodeError("truncated length-delimited field")
            value = bytes(data[pos : pos + length])
            pos += length
        elif wire_type == WIRE_FIXED64:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64 field")
            value = bytes(data[pos : pos + 8])
            pos += 8
        elif wire_type == WIRE_FIXED32:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32 field")
            value = bytes(data[pos : pos + 4])
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
        yield field, wire_type, value


def as_str(value, name: str) -> str:
    if not isinstance(value, bytes):
        raise DecodeError(f"{name}: expected a length-delimited field")
    try:
        return value.decode()
    except UnicodeDecodeError as e:
        raise DecodeError(f"{name}: invalid UTF-8") from e


def as_bytes(value, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise DecodeError(f"{name}: expected a length-delimited field")
    return value


def as_int(value, name: str) -> int:
    if not isinstance(value, int):
        raise DecodeError(f"{name}: expected a varint field")
    return value
