"""JSON load/dump in plain Python, without `import json`.

`import json` costs pyrunc ~5-8 ms on every call (json.decoder and json.encoder import
`re`, which imports `enum`), more than a `pyrunc state` spends on everything else it does.
The project's rules (issue #15) rule out driving CPython's private accelerator `_json`,
so this module parses and writes JSON itself, letting str methods do the scanning
(str.find for the end of a string, isprintable for control characters, slices for
numbers and literals) rather than a Python loop per character.

loads is as strict as json.loads with its defaults: RFC 8259, plus NaN, Infinity and
-Infinity (through parse_constant), lone surrogates from \\u escapes kept as they are,
control characters in strings refused, integers as long as int() takes.  On a document
it accepts it returns what json.loads returns, and it refuses what json.loads refuses
(tests/unit/test_jsonlite.py checks both against json).  One difference by design:
arrays and objects nested deeper than the interpreter lets Python recurse (one frame a
level: ~990 levels by default, about json.loads's own limit on 3.11; later versions'
json recurses on the C stack and goes deeper) are refused.

Errors are json.JSONDecodeError (a ValueError) with line and column: a refused document
is handed to the public json.loads, imported on that path only, and its error is the one
raised, worded and placed as json words and places it.  The two failures json itself
does not raise as one, nesting too deep and an integer literal longer than int() takes,
get a message of their own.  Exceptions from the caller's hooks pass through as they are.
dumps writes what json.dumps(obj, separators=(",", ":")) writes.
"""

_WS = " \t\n\r"
_DIGITS = "0123456789"
_NUMBER = "0123456789+-.eE"
_END = "\x00"  # appended to the text: indexing past the document finds it, never a token
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


class _Invalid(Exception):
    """The document is not JSON (json.loads words the error); or, with a message of
    ours, json.loads would fail with something other than a JSONDecodeError."""

    def __init__(self, msg=None, pos=0):
        super().__init__(msg)
        self.msg, self.pos = msg, pos


def loads(text, object_pairs_hook=None, parse_constant=None):
    """Parse a JSON document (str or UTF-8 bytes); raises json.JSONDecodeError (a
    ValueError; UnicodeDecodeError for bytes that are not UTF-8).  The hooks mean what
    they mean for json.loads."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    s = text + _END
    try:
        i = 0
        while s[i] in _WS:
            i += 1
        value, i = _value(s, i, object_pairs_hook, parse_constant)
        while s[i] in _WS:
            i += 1
        if i != len(text):
            raise _Invalid
    except _Invalid as invalid:
        if invalid.msg is None:
            return _public_loads(text, object_pairs_hook, parse_constant)
        raise _error(text, invalid.msg, invalid.pos) from None
    except RecursionError:
        depth, index = _deepest(text)
        raise _error(text, f"arrays and objects nested too deeply ({depth} levels)",
                     index) from None
    return value


def _value(s, i, hook, constant):
    """(the value that starts at s[i], the index after it)."""
    c = s[i]
    if c == '"':
        return _string(s, i + 1)
    if c == "{":
        return _container(s, i + 1, hook, constant, "}")
    if c == "[":
        return _container(s, i + 1, hook, constant, "]")
    if c in _DIGITS or c == "-":
        return _number(s, i, constant)
    if c == "n" and s[i:i + 4] == "null":
        return None, i + 4
    if c == "t" and s[i:i + 4] == "true":
        return True, i + 4
    if c == "f" and s[i:i + 5] == "false":
        return False, i + 5
    if c == "N" and s[i:i + 3] == "NaN":
        return _constant("NaN", constant), i + 3
    if c == "I" and s[i:i + 8] == "Infinity":
        return _constant("Infinity", constant), i + 8
    raise _Invalid


def _constant(name, constant):
    return _CONSTANTS[name] if constant is None else constant(name)


def _string(s, i):
    """(the string whose body starts at s[i], the index after its closing quote)."""
    end = s.find('"', i)
    if end < 0:
        raise _Invalid
    chunk = s[i:end]
    if "\\" in chunk:
        return _escaped_string(s, i)
    if not chunk.isprintable() and min(chunk) < " ":
        raise _Invalid  # a control character: json's strict mode refuses it
    return chunk, end + 1


def _escaped_string(s, i):
    parts = []
    while True:
        end = s.find('"', i)
        slash = s.find("\\", i, end)
        if end < 0:
            raise _Invalid
        chunk = s[i:end if slash < 0 else slash]
        if not chunk.isprintable() and min(chunk) < " ":
            raise _Invalid
        parts.append(chunk)
        if slash < 0:
            return "".join(parts), end + 1
        esc = s[slash + 1]
        if esc != "u":
            try:
                parts.append(_ESCAPES[esc])
            except KeyError:
                raise _Invalid from None
            i = slash + 2
            continue
        code = _hex4(s, slash + 2)
        i = slash + 6
        if 0xD800 <= code <= 0xDBFF and s[i:i + 2] == "\\u":
            low = _hex4(s, i + 2)
            if 0xDC00 <= low <= 0xDFFF:
                code = 0x10000 + ((code - 0xD800) << 10 | (low - 0xDC00))
                i += 6
        parts.append(chr(code))


def _hex4(s, i):
    digits = s[i:i + 4]
    if len(digits) != 4 or not _HEX.issuperset(digits):
        raise _Invalid
    return int(digits, 16)


def _number(s, i, constant):
    """(the number, or -Infinity, that starts at s[i], the index after it)."""
    j = i + 1
    while s[j] in _NUMBER:
        j += 1
    token = s[i:j]
    digits = token[1:] if token[0] == "-" else token
    if digits.isdigit():
        if digits[0] == "0" and len(digits) > 1:
            raise _Invalid
        try:
            return int(token), j
        except ValueError:  # longer than sys.get_int_max_str_digits()
            import sys

            limit = sys.get_int_max_str_digits()
            raise _Invalid(f"integer literal too long (more than {limit} digits)",
                           i) from None
    if token == "-" and s[j:j + 8] == "Infinity":
        return _constant("-Infinity", constant), j + 8
    # int part, then .digits and e[sign]digits, each optional
    mantissa, e, exponent = digits.replace("E", "e").partition("e")
    whole, dot, fraction = mantissa.partition(".")
    if (not whole.isdigit() or whole[0] == "0" and len(whole) > 1
            or dot and not fraction.isdigit()
            or e and not exponent.lstrip("+-").isdigit()
            or e and len(exponent) - len(exponent.lstrip("+-")) > 1):
        raise _Invalid
    return float(token), j


def _container(s, i, hook, constant, close):
    """(the object (close "}") or array (close "]") whose body starts at s[i], the index
    after its closing bracket).  Nested ones are one call deeper; string values are read
    in place (a call for each would cost a tenth of the parse)."""
    is_object = close == "}"
    items = []  # the array's values, or the object's (key, value) pairs for the hook
    members = {} if is_object and hook is None else None
    gap = ""
    first = True
    while True:
        if s[i] in _WS:  # pretty-printed: the same gap before each member, as a rule
            if gap and s.startswith(gap, i):
                i += len(gap)
            else:
                j = i + 1
                while s[j] in _WS:
                    j += 1
                gap, i = s[i:j], j
            while s[i] in _WS:
                i += 1
        if first and s[i] == close:
            i += 1
            break
        if is_object:
            if s[i] != '"':
                raise _Invalid
            key, i = _string(s, i + 1)
            while s[i] in _WS:
                i += 1
            if s[i] != ":":
                raise _Invalid
            i += 1
            while s[i] in _WS:
                i += 1
        c = s[i]
        if c == '"':
            j = s.find('"', i + 1)
            value = s[i + 1:j]
            if j < 0 or "\\" in value or not value.isprintable():
                value, i = _string(s, i + 1)
            else:
                i = j + 1
        elif c == "{":
            value, i = _container(s, i + 1, hook, constant, "}")
        elif c == "[":
            value, i = _container(s, i + 1, hook, constant, "]")
        else:
            value, i = _value(s, i, hook, constant)
        if members is not None:
            members[key] = value
        elif is_object:
            items.append((key, value))
        else:
            items.append(value)
        while s[i] in _WS:
            i += 1
        c = s[i]
        i += 1
        if c == close:
            break
        if c != ",":
            raise _Invalid
        first = False
    if members is not None:
        return members, i
    return (hook(items) if is_object else items), i


def _error(text, msg, idx):
    import json  # only on the error path

    return json.JSONDecodeError(msg, text, idx)


def _public_loads(text, object_pairs_hook, parse_constant):
    """The refused document again through json.loads, for its error.  Should json.loads
    accept it after all (a difference the property tests hunt for), its value is
    returned: a document json takes is never refused."""
    import json

    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook,
                          parse_constant=parse_constant)
    except RecursionError:
        depth, index = _deepest(text)
        raise _error(text, f"arrays and objects nested too deeply ({depth} levels)",
                     index) from None


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


# --- dumps ---

_ASCII_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ASCII_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\b"): "\\b", ord("\f"): "\\f",
                       ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x7F: "\\u007f"})


def _quote(text):
    """The string as json.dumps writes it with ensure_ascii: quoted, escaped, ASCII."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    text = text.translate(_ASCII_ESCAPES)
    if not text.isascii():
        text = "".join(c if c < "\x80" else _escape_wide(ord(c)) for c in text)
    return '"' + text + '"'


def _escape_wide(code):
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


def _float(value):
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)


def _key(key):
    if isinstance(key, str):
        return _quote(key)
    if isinstance(key, float):
        return '"' + _float(key) + '"'
    if key is True or key is False or key is None:
        return '"' + _encode(key) + '"'
    if isinstance(key, int):
        return '"' + int.__repr__(key) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _encode(obj):
    if isinstance(obj, str):
        return _quote(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join([_encode(item) for item in obj]) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join([_key(k) + ":" + _encode(v) for k, v in obj.items()]) + "}"
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj):
    """Compact JSON text, exactly json.dumps(obj, separators=(",", ":")): no spaces,
    ASCII only, NaN and Infinity as json writes them."""
    return _encode(obj)
