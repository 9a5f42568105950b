"""JSON load/dump straight from CPython's C accelerator `_json`.

`import json` costs pyrunc ~5 ms on every call (json.decoder pulls in `re`, which pulls in
`enum`), a third of `pyrunc state`.  The C scanner and encoder that json uses underneath
need neither, so this module drives them directly.

Why the shortcut is safe: it is the very scanner json.loads runs, built from a context
with the attributes JSONDecoder gives it, so on a document it accepts it returns what
json.loads returns.  Its error path is not safe on its own: the scanner raises
JSONDecodeError by looking json.decoder up in sys.modules, and when nothing imported it
(pyrunc under `python -I`) it fails with SystemError instead.  So a failed fast scan is
never reported as such: loads() redoes the document with the public json.loads (which
imports json, on this path only) and reports what that says, always as a
json.JSONDecodeError with line and column, also for the two failures json itself does not
phrase as one (nesting deeper than the interpreter's recursion limit, an integer literal
longer than int() takes).  Exceptions raised by the caller's hooks pass through as they are.
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
    """Parse a JSON document (str or UTF-8 bytes); raises json.JSONDecodeError (a
    ValueError; UnicodeDecodeError for bytes that are not UTF-8).  The hooks mean what
    they mean for json.loads."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if object_pairs_hook is None and parse_constant is None:
        scan = _default_scan
    else:
        scan = _json.make_scanner(_ScanContext(object_pairs_hook, parse_constant))
    start = _skip(text, 0)
    try:
        value, end = scan(text, start)
    except BaseException as error:
        if not isinstance(error, Exception) or isinstance(error, MemoryError):
            raise
        return _public_loads(text, object_pairs_hook, parse_constant)
    end = _skip(text, end)
    if end != len(text):
        raise _error(text, "Extra data", end)
    return value


def _public_loads(text, object_pairs_hook, parse_constant):
    """The document again through json.loads, for its verdict and its error."""
    import json

    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook,
                          parse_constant=parse_constant)
    except RecursionError:
        depth, index = _deepest(text)
        raise _error(text, f"arrays and objects nested too deeply ({depth} levels)",
                     index) from None
    except ValueError as error:
        if type(error) is not ValueError:  # JSONDecodeError, or a hook's own error
            raise
        # int() refuses literals over sys.get_int_max_str_digits() digits
        import re

        found = re.search(f"-?[0-9]{{{_int_max_digits() + 1},}}", text)
        raise _error(text, "integer literal too long"
                     f" (more than {_int_max_digits()} digits)",
                     found.start() if found else 0) from None


def _int_max_digits():
    import sys

    return sys.get_int_max_str_digits() or 4300


def _deepest(text):
    """(greatest nesting depth, index where it is first reached), strings skipped."""
    depth = deepest = where = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, index
        elif char in "]}":
            depth -= 1
    return deepest, where


def _reject(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _reject, _json.encode_basestring_ascii, None, ":", ",",
                              False, False, True)
_sorted = _json.make_encoder(None, _reject, _json.encode_basestring_ascii, None, ":", ",",
                             True, False, True)


def dumps(obj, sort_keys=False):
    """Compact JSON text (no spaces), like json.dumps(obj, separators=(",", ":"))."""
    return "".join((_sorted if sort_keys else _compact)(obj, 0))
