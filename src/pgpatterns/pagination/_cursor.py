"""Cursors: sort-key values as type-tagged JSON, bound to the ordering, signed (HMAC-SHA256)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pgpatterns.errors import CursorError, PaginationError
from pgpatterns.pagination._order import Key, fingerprint

__all__ = ["check_secret", "decode_cursor", "encode_cursor"]

_VERSION = 1
_MIN_SECRET = 16


def check_secret(where: str, secret: object) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(raw, bytes) or len(raw) < _MIN_SECRET:
        raise PaginationError(
            f"{where}(): secret must be str or bytes of at least {_MIN_SECRET} bytes (a "
            f"server-side key, e.g. secrets.token_bytes(32)), got {type(secret).__name__}"
            f"{'' if not isinstance(raw, bytes) else f' of {len(raw)} bytes'}.")
    return raw


_Tag = tuple[str, Callable[[Any], Any], Callable[[Any], Any]]
_TAGS: list[tuple[type[Any], _Tag]] = [  # order matters: bool before int, datetime before date
    (bool, ("bool", lambda v: v, bool)),
    (int, ("int", str, int)),
    (float, ("float", repr, float)),
    (str, ("str", lambda v: v, str)),
    (Decimal, ("dec", str, Decimal)),
    (uuid.UUID, ("uuid", str, uuid.UUID)),
    (dt.datetime, ("dt", lambda v: v.isoformat(), dt.datetime.fromisoformat)),
    (dt.date, ("date", lambda v: v.isoformat(), dt.date.fromisoformat)),
    (dt.time, ("time", lambda v: v.isoformat(), dt.time.fromisoformat)),
    (bytes, ("bytes", lambda v: base64.b64encode(v).decode(), base64.b64decode)),
]
_DECODE = {tag: load for _, (tag, _dump, load) in _TAGS}


def _encode_value(value: object) -> list[Any]:
    for cls, (tag, dump, _load) in _TAGS:
        if isinstance(value, cls):
            return [tag, dump(value)]
    raise PaginationError(
        f"next_cursor(): a sort-key value of type {type(value).__name__} ({value!r}) cannot "
        f"go into a cursor: sort by int, str, Decimal, float, UUID, date/time or bytes columns.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def encode_cursor(keys: list[Key], values: Sequence[object], secret: bytes) -> str:
    payload = json.dumps({"v": _VERSION, "o": fingerprint(keys),
                          "k": [_encode_value(v) for v in values]},
                         separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def decode_cursor(where: str, keys: list[Key], cursor: object, secret: bytes) -> list[Any]:
    if not isinstance(cursor, str):
        raise CursorError(f"{where}(): after={cursor!r} is not a cursor: pass the str a "
                          f"previous page returned as next_cursor, or None for page 1.")
    try:
        body, sig = cursor.split(".")
        payload, signature = _unb64(body), _unb64(sig)
    except (ValueError, binascii.Error) as exc:
        raise CursorError(f"{where}(): after is not a cursor this library issued "
                          f"(malformed); start again from page 1 (after=None).") from exc
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise CursorError(f"{where}(): after has a bad signature: it was altered, or signed "
                          f"with another secret; start again from page 1 (after=None).")
    try:
        data = json.loads(payload)
        if data["v"] != _VERSION or data["o"] != fingerprint(keys):
            raise CursorError(
                f"{where}(): after was issued for another ordering (or version), not "
                f"{[k.column.name + (' DESC' if k.descending else '') for k in keys]}; a "
                f"cursor only continues the listing it came from. Start from after=None.")
        values = [_DECODE[tag](raw) for tag, raw in data["k"]]
    except CursorError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CursorError(f"{where}(): after carries values this version cannot read; "
                          f"start again from page 1 (after=None).") from exc
    if len(values) != len(keys):
        raise CursorError(f"{where}(): after holds {len(values)} keys, the ordering has "
                          f"{len(keys)}; start again from page 1 (after=None).")
    return values
