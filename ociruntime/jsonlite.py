"""JSON load/dump straight from CPython's C accelerator `_json`.

`import json` costs pyrunc ~15 ms on every call (json.decoder pulls in `re`, which pulls in
`enum`), more than the rest of `pyrunc state`.  The C scanner and encoder that json uses
underneath need neither, so this module drives them directly.  Only the error path imports
the json package (for its JSONDecodeError with line and column).
"""

import _json

_WHITESPACE = " \t\n\r"


class _ScanContext:
    """The attributes _json.make_scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    parse_float = float
    parse_int = int
    memo = None

    def __init__(self, object_pairs_hook=None, parse_constant=None):
        self.object_pairs_hook = object_pairs_hook
        if parse_constant is not None:
            self.parse_constant = parse_constant

    @staticmethod
    def parse_constant(name):
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_default_scan = _json.make_scanner(_ScanContext())


def _skip(text, idx):
    end = len(text)
    while idx < end and text[idx] in _WHITESPACE:
        idx += 1
    return idx


def _error(text, msg, idx):
    import json  # only on the error path

    return json.JSONDecodeError(msg, text, idx)


def loads(text, object_pairs_hook=None, parse_constant=None):
    """Parse a JSON document (str or UTF-8 bytes); raises json.JSONDecodeError.
    The hooks mean what they mean for json.loads."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if object_pairs_hook is None and parse_constant is None:
        scan = _default_scan
    else:
        scan = _json.make_scanner(_ScanContext(object_pairs_hook, parse_constant))
    start = _skip(text, 0)
    try:
        value, end = scan(text, start)
    except StopIteration as stop:
        raise _error(text, "Expecting value", stop.value) from None
    end = _skip(text, end)
    if end != len(text):
        raise _error(text, "Extra data", end)
    return value


def _reject(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _reject, _json.encode_basestring_ascii, None, ":", ",",
                              False, False, True)
_sorted = _json.make_encoder(None, _reject, _json.encode_basestring_ascii, None, ":", ",",
                             True, False, True)


def dumps(obj, sort_keys=False):
    """Compact JSON text (no spaces), like json.dumps(obj, separators=(",", ":"))."""
    return "".join((_sorted if sort_keys else _compact)(obj, 0))
