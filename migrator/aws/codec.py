"""The canonical form of DynamoDB items and keys: one codec for verify, repair, redrive and the tests.

The canonical form follows DynamoDB's own notion of equality, exactly and type-preserving:

* attribute order never matters, set element order never matters, list order does;
* numbers compare by value (``1`` == ``1.0`` == ``1.00`` == ``1E0``, ``-0`` == ``0``), normalised
  through :class:`decimal.Decimal` with no rounding and no float;
* every type keeps its tag: the string ``"1"``, the number ``1`` and the binary ``b"1"`` all differ;
* binary compares bytes; maps and lists recurse.

Values are raw ``AttributeValue`` maps as the boto3 client returns them (``B``/``BS`` as ``bytes``;
base64 text, the DynamoDB JSON wire form, is accepted too).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

AttributeValue = Mapping[str, Any]
"""A raw DynamoDB AttributeValue, e.g. ``{"S": "a"}`` or ``{"M": {...}}``."""
Item = Mapping[str, AttributeValue]
Key = dict[str, dict[str, Any]]
"""A key as the boto3 client takes it: attribute name → AttributeValue (``B`` as ``bytes``)."""
JsonKey = dict[str, dict[str, str]]
"""A key as plain JSON: like :data:`Key` but ``B`` values base64-encoded (DynamoDB JSON)."""

DIGEST_SIZE = 16


def canonical_number(text: str) -> str:
    """The canonical text of a DynamoDB number: plain notation, no exponent, no trailing zeros.

    Exact (no context rounding, so 38 significant digits survive); ``-0`` becomes ``0``. This is also
    the form DynamoDB itself returns, so a canonical key is a valid key to send back.
    """
    if text.isascii() and text.isdigit() and (text[0] != "0" or text == "0"):
        return text  # fast path: a plain non-negative integer is already canonical
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a DynamoDB number: {text!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a DynamoDB number: {text!r}")
    sign, digit_tuple, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    if exponent >= 0:
        plain = digits + "0" * exponent
    else:
        point = len(digits) + exponent
        plain = f"{digits[:point]}.{digits[point:]}" if point > 0 else "0." + "0" * -point + digits
    return "-" + plain if sign else plain


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):  # DynamoDB JSON wire form: base64
        return base64.b64decode(value, validate=True)
    raise TypeError(f"binary value must be bytes, not {type(value).__name__}")


_PACK_LEN = struct.Struct(">I").pack

# One distinct tag per DynamoDB type; with explicit lengths and counts the encoding is prefix-free,
# hence injective: two values encode alike exactly when DynamoDB holds them equal.
_SCALAR_TAGS = {"S": b"s", "N": b"n", "B": b"b"}
_SET_TAGS = {"SS": (b"S", "S"), "NS": (b"N", "N"), "BS": (b"B", "B")}


def _scalar_payload(tag: str, value: Any) -> bytes:
    if tag == "S":
        if not isinstance(value, str):
            raise TypeError(f"S value must be str, not {type(value).__name__}")
        return value.encode("utf-8")
    if tag == "N":
        if not isinstance(value, str):
            raise TypeError(f"N value must be str, not {type(value).__name__}")
        return canonical_number(value).encode("ascii")
    return _as_bytes(value)


def _encode(value: AttributeValue, out: list[bytes]) -> None:
    if len(value) != 1:
        raise ValueError(f"an AttributeValue has exactly one type, got {sorted(value)}")
    ((tag, inner),) = value.items()
    scalar = _SCALAR_TAGS.get(tag)
    if scalar is not None:
        payload = _scalar_payload(tag, inner)
        out += (scalar, _PACK_LEN(len(payload)), payload)
    elif tag == "M":
        _encode_map(inner, out)
    elif tag == "L":
        out += (b"l", _PACK_LEN(len(inner)))
        for element in inner:
            _encode(element, out)
    elif tag in _SET_TAGS:
        set_tag, element_tag = _SET_TAGS[tag]
        elements = sorted({_scalar_payload(element_tag, element) for element in inner})
        out += (set_tag, _PACK_LEN(len(elements)))
        for payload in elements:
            out += (_PACK_LEN(len(payload)), payload)
    elif tag == "BOOL":
        out.append(b"T" if inner else b"F")
    elif tag == "NULL":
        out.append(b"z")
    else:
        raise ValueError(f"unknown AttributeValue type {tag!r}")


def _encode_map(attributes: Mapping[str, AttributeValue], out: list[bytes]) -> None:
    out += (b"m", _PACK_LEN(len(attributes)))
    for name in sorted(attributes):
        encoded = name.encode("utf-8")
        out += (_PACK_LEN(len(encoded)), encoded)
        _encode(attributes[name], out)


def canonical_item(item: Item) -> bytes:
    """The canonical byte form of a whole item (equal exactly when DynamoDB holds the items equal)."""
    out: list[bytes] = []
    _encode_map(item, out)
    return b"".join(out)


def item_digest(item: Item) -> bytes:
    """A 16-byte BLAKE2b digest of :func:`canonical_item`."""
    return hashlib.blake2b(canonical_item(item), digest_size=DIGEST_SIZE).digest()


_KEY_TYPES = {"S": 0, "N": 1, "B": 2}
_KEY_TYPE_NAMES = ("S", "N", "B")


def canonical_key(item: Item, key_names: Sequence[str]) -> tuple[bytes, bool]:
    """``(canonical key bytes, raw form differs from the canonical one)`` for an item or a key.

    The bytes are hashable, compact and reversible (:func:`decode_key`); numbers are canonical, so
    ``{"N": "1.0"}`` and ``{"N": "1"}`` give the same key, as in DynamoDB.
    """
    parts: list[bytes] = []
    differs = False
    for name in key_names:
        value = item.get(name)
        if value is None:
            raise ValueError(f"item has no key attribute {name!r}: check key_names")
        if len(value) != 1:
            raise ValueError(f"key attribute {name!r} is not an AttributeValue: {value!r}")
        ((tag, inner),) = value.items()
        code = _KEY_TYPES.get(tag)
        if code is None:
            raise ValueError(f"key attribute {name!r} must be S, N or B, not {tag}")
        payload = _scalar_payload(tag, inner)
        if tag == "B":
            differs = differs or not isinstance(inner, bytes)
        elif tag == "N":
            differs = differs or payload != inner.encode("ascii", "replace")
        parts += (bytes((code,)), _PACK_LEN(len(payload)), payload)
    return b"".join(parts), differs


def decode_key(encoded: bytes, key_names: Sequence[str]) -> Key:
    """The boto3 key (``B`` as bytes, numbers canonical) of a :func:`canonical_key`."""
    key: Key = {}
    offset = 0
    for name in key_names:
        tag = _KEY_TYPE_NAMES[encoded[offset]]
        (length,) = struct.unpack_from(">I", encoded, offset + 1)
        payload = encoded[offset + 5 : offset + 5 + length]
        offset += 5 + length
        key[name] = {tag: payload if tag == "B" else payload.decode("utf-8")}
    return key


def key_to_json(key: Mapping[str, AttributeValue]) -> JsonKey:
    """A key as plain JSON (DynamoDB JSON: ``B`` base64-encoded)."""
    result: JsonKey = {}
    for name, value in key.items():
        ((tag, inner),) = value.items()
        result[name] = {tag: base64.b64encode(_as_bytes(inner)).decode("ascii") if tag == "B" else inner}
    return result


def key_from_json(key: Mapping[str, Mapping[str, str]]) -> Key:
    """The boto3 form of a :func:`key_to_json` key (``B`` decoded from base64)."""
    result: Key = {}
    for name, value in key.items():
        ((tag, inner),) = value.items()
        result[name] = {tag: base64.b64decode(inner, validate=True) if tag == "B" else inner}
    return result


def key_of(item: Item, key_names: Sequence[str]) -> bytes:
    """The canonical key bytes of an item or a key (:func:`canonical_key` without the flag)."""
    return canonical_key(item, key_names)[0]
