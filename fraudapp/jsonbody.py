"""Request bodies as JSON, with a nesting limit checked before the parser runs.

Python's parser recurses once per level, so a body nested a thousand deep ends in a RecursionError
(and deep values cost every later step too). `loads` counts the brackets outside strings first
and refuses a body nested deeper than the limit; the API and the webhook receiver both read their
bodies through it.
"""

from __future__ import annotations

import json
import re

import numpy as np

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 opens, -1 (as int8) closes


class NotJSON(ValueError):
    """The body is not a JSON document (the message says why, for a field error)."""


class TooDeep(NotJSON):
    """The body nests arrays and objects deeper than allowed."""


def depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in a UTF-8 JSON text (strings skipped)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.translate(_OPENERS), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max())


def _openers(data: bytes) -> int:
    """The opening brackets of a text, in strings too: no nesting is deeper than that (a cheap
    bound that spares a small body, such as one transaction, the count of `depth`)."""
    return data.count(b"[") + data.count(b"{")


def loads(data: bytes, max_depth: int):
    """The parsed body; NotJSON when it is no UTF-8 JSON, TooDeep when nested past `max_depth`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotJSON("not UTF-8 JSON") from None
    if _openers(data) > max_depth and depth(data) > max_depth:
        raise TooDeep("nested too deeply")
    try:
        return json.loads(text)
    except ValueError:
        raise NotJSON("not JSON") from None
