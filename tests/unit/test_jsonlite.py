"""jsonlite: a JSON parser and writer of its own (no `json`, no `_json` on the success path)
that accepts exactly what json.loads accepts, returns what it returns, writes what
json.dumps writes, and reports every failure as json.loads reports it (a JSONDecodeError
with a position), also in a fresh `python -I` where nothing imported json.

json is the oracle throughout: the property tests draw values, their texts in every layout
json writes, and damaged texts (characters inserted, deleted, replaced; random text over
JSON's alphabet), and compare outcome, value (NaN-aware, types included), error message
and position."""

import json
import pathlib
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociruntime import jsonlite

REPO = str(pathlib.Path(jsonlite.__file__).resolve().parents[1])

# Deep enough for every supported interpreter to refuse: 3.13's C scanner recurses on
# the C stack (not sys.getrecursionlimit()) and accepts 5000 levels.
DEEP = 20000
BROKEN = [
    '{"a": [1, 2,, 3]}', '{"a": 1,}', "[1, 2", '{"a" 1}', "", "   ", "{} x", '"\\x"',
    "[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "9" * 5000,
    '{"a": [' + "1" * 4301 + "]}", "NaN", '{"a": tru}',
]


@pytest.mark.parametrize("text", BROKEN, ids=range(len(BROKEN)))
def test_errors_in_a_fresh_isolated_interpreter(text):
    """Each document in its own `python -I` that never imported json (as the launcher
    runs pyrunc): the error must be a JSONDecodeError, never SystemError."""
    script = (
        "import sys\n"
        "from ociruntime import jsonlite\n"
        "assert 'json.decoder' not in sys.modules\n"
        "try:\n"
        "    jsonlite.loads(sys.stdin.read(), object_pairs_hook=dict)\n"
        "except ValueError as e:\n"
        "    print(type(e).__name__, e.lineno, e.colno)\n"
        "else:\n"
        "    print('accepted')\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script], input=text, capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    if text == "NaN":
        assert out.stdout == "accepted\n"  # parse_constant decides (config.py refuses it)
    else:
        assert out.stdout.startswith("JSONDecodeError "), (text[:40], out.stdout)


@pytest.mark.parametrize("text, words, pos", [
    ("[" * DEEP + "]" * DEEP, f"nested too deeply ({DEEP} levels)", DEEP - 1),  # deepest
    ('{"a": ' + "7" * 5000 + "}", "integer literal too long", 6),
    ('{"a": [1,, 2]}', "Expecting value", 9),
])
def test_messages_and_positions(text, words, pos):
    with pytest.raises(json.JSONDecodeError) as caught:
        jsonlite.loads(text)
    assert words in caught.value.msg
    assert caught.value.pos == pos


def test_hook_errors_pass_through():
    class Stop(ValueError):
        pass

    def hook(pairs):
        raise Stop("mine")

    with pytest.raises(Stop):
        jsonlite.loads('{"a": {"b": 1}}', object_pairs_hook=hook)


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                      max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(doc=json_docs, indent=st.sampled_from([None, 1]))
def test_same_result_as_json_loads(doc, indent):
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    assert jsonlite.loads(text) == json.loads(text)
    assert jsonlite.loads(text.encode()) == json.loads(text)
    assert json.loads(jsonlite.dumps(doc)) == doc


# --- property tests with json as the oracle ---

# every code point, lone surrogates and control characters included
any_text = st.text(st.characters(blacklist_categories=()), max_size=12)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**200, 2**200)
           | st.floats() | any_text)
keys = any_text | st.integers() | st.floats() | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(any_text, children, max_size=4)
                      | st.dictionaries(keys, children, max_size=3)),
    max_leaves=25,
)


def same(a, b):
    """Equal values of equal types, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple):  # ("constant", name) from parse_constant, or pairs
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return (list(a) == list(b)  # same keys, same order
                and all(same(a[k], b[k]) for k in a))
    return a == b


@settings(max_examples=400, deadline=None)
@given(value=values)
def test_dumps_writes_what_json_dumps_writes(value):
    expected = json.dumps(value, separators=(",", ":"))
    assert jsonlite.dumps(value) == expected
    assert jsonlite.dumps(value).isascii()
    assert same(jsonlite.loads(expected), json.loads(expected))


def test_dumps_refuses_what_json_dumps_refuses():
    for value in ({(1, 2): 3}, {b"k": 1}, b"bytes", {1, 2}, object(), [1, {"a": 1j}]):
        with pytest.raises(TypeError) as ours:
            jsonlite.dumps(value)
        with pytest.raises(TypeError) as theirs:
            json.dumps(value, separators=(",", ":"))
        assert str(ours.value) == str(theirs.value)


def outcome(loads, text, **hooks):
    try:
        return "value", loads(text, **hooks)
    except json.JSONDecodeError as error:
        return "error", (error.msg, error.pos, error.lineno, error.colno)


def assert_agrees(text):
    hooks = {"object_pairs_hook": lambda pairs: ("pairs", pairs),
             "parse_constant": lambda name: ("constant", name)}
    for kwargs in ({}, hooks):
        ours, theirs = outcome(jsonlite.loads, text, **kwargs), outcome(json.loads, text, **kwargs)
        assert ours[0] == theirs[0], (text, ours, theirs)
        if ours[0] == "value":
            assert same(ours[1], theirs[1]), (text, ours, theirs)
        else:
            assert ours == theirs, text


layouts = st.sampled_from([
    {}, {"separators": (",", ":")}, {"indent": 2}, {"indent": "\t"}, {"indent": 0},
    {"indent": " \r\n", "separators": (" ,\t", "\n:\r")}, {"ensure_ascii": False},
])


@settings(max_examples=300, deadline=None)
@given(value=values, layout=layouts)
def test_loads_of_valid_texts(value, layout):
    text = json.dumps(value, **layout)
    assert_agrees(text)
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate with ensure_ascii=False: not UTF-8
        return
    assert same(jsonlite.loads(data), json.loads(data))


# the characters JSON is made of, the ones that break it, and a few from further out
ALPHABET = ('{}[]",:.-+eE0123456789 \t\n\r\\/u'
            "truefalsnNaIiy" "bfnrtABCDEF" "\x00\x01\x1f\x7f\x0b\x0c\xa0\u2028\ufeff"
            "\ud800\udc00\ud83d\ude00\U0001f600\u00e9")
PIECES = list(ALPHABET) + [",}", ",]", ", ", '"k":', ":1", "[]", "{}", "1,", '"k"', "1"]
edits = st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]),
                           st.integers(0, 10**6), st.sampled_from(PIECES)),
                 min_size=1, max_size=3)


def damage(text, changes):
    """The text with characters (or a piece of JSON) inserted, deleted or replaced."""
    for kind, where, char in changes:
        where = where % (len(text) + 1)
        if kind == "insert":
            text = text[:where] + char + text[where:]
        elif kind == "delete":
            text = text[:where] + text[where + 1:]
        else:
            text = text[:where] + char + text[where + 1:]
    return text


@settings(max_examples=600, deadline=None)
@given(value=values, layout=layouts, changes=edits)
def test_loads_of_damaged_texts(value, layout, changes):
    assert_agrees(damage(json.dumps(value, **layout), changes))


@settings(max_examples=600, deadline=None)
@given(text=st.text(st.sampled_from(ALPHABET), max_size=30))
def test_loads_of_random_texts(text):
    assert_agrees(text)


ESCAPES = st.lists(st.sampled_from([
    "a", "\\u", "\\u0041", "\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud83d\\ude00",
    "\\uD83D\\uDE00", "\\ud800\\u0041", "\\ud800\\ud800", "\\ud800\\", "\\ud800\\u",
    "\\ud800\\uzzzz", "\\u12", "\\u12g4", "\\u+123", "\\u 123", "\\u-123", "\\u_123",
    "\\x41", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\a", "\\",
    "\"", "\x1f", "\x7f", "\u2028", "\ud800", "\U0001f600",
]), max_size=6)


# where a piece of JSON goes: alone, in an array, as an object's key, as its value
PLACES = st.sampled_from(["%s", "[%s]", "{%s:1}", '{"k":%s}', "{%s}"])


@settings(max_examples=400, deadline=None)
@given(parts=ESCAPES, closed=st.booleans(), place=PLACES)
def test_loads_of_escapes(parts, closed, place):
    assert_agrees(place % ('"' + "".join(parts) + ('"' if closed else "")))


NUMBERS = st.tuples(
    st.sampled_from(["", "-", "--", "+"]),
    st.sampled_from(["", "0", "1", "01", "00", "12", "-1"]),
    st.sampled_from(["", ".", ".5", ".05", "..5", ".5.", ".e"]),
    st.sampled_from(["", "e", "E", "e5", "E+5", "e-05", "e+-5", "e--5", "e+", "e5e", "e5.1"]),
    st.sampled_from(["", "x", "Infinity", "NaN", "-", "0", " 1", ".", "e"]),
).map("".join)


@settings(max_examples=400, deadline=None)
@given(number=NUMBERS, place=PLACES)
def test_loads_of_numbers(number, place):
    assert_agrees(place % number)


TOKENS = st.lists(st.sampled_from([
    "{", "}", "[", "]", ",", ":", '"k"', '"\\u00e9\\n"', '"\x01"', '""', "0", "-1.5e3", "01",
    "true", "fals", "null", "NaN", "-Infinity", "Infinity", " ", "\n  ", "\t", "\x0b", "x",
]), max_size=14).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=TOKENS)
def test_loads_of_token_sequences(text):
    """Random sequences of JSON's tokens: the grammar's corners (trailing commas, missing
    values, colons in arrays, empty containers, values side by side)."""
    assert_agrees(text)


CORNERS = [
    "[1,]", '{"a":1,}', "[,]", "{,}", "[,1]", '{"a":1,,"b":2}', '{"a" 1}', '{"a":}', "{:1}",
    "[1 2]", '{"a":1 "b":2}', "[] []", "{}}", "[[]", '{"a":1}x', '"a" "b"', "[1,\n]",
    "{ }", "[ ]", " { } ", '{"a":[]}', '[{}, {"b":[ ]}]', " \t\n\r1 \t\n\r", "\x0b1", "1\x0c",
    '{"a":1,"a":2}', '{"a":1,"b":2,"a":3}', '{"a":{"x":1},"a":[]}', "-", "-0", "-01", "1.",
    ".1", "1e", "1e+", "01", "00", "-0.0e-0", "1E400", "-1e-400", "-Infinity", "-Inf",
    "Infinityx", "-NaN", "nul", "True", "nulll", '"\\u00e9"', '"\\ud83d\\ude00"', '"\\ude00"',
    '"\\ud83d"', '"\\ud83dx"', '"\\u00"', '"\\"', '"\\\\"', '"\\\\\\"', '["a\\"]', "\ufeff[]",
    "[\n  1,\n  2\n]", "[\n  1,\n   2,\n  3\n]", "{\n\t\"a\": 1,\n\t\"b\": 2\n}", "[\n  1,\n  ]",
]


@pytest.mark.parametrize("text", CORNERS, ids=range(len(CORNERS)))
def test_loads_of_grammar_corners(text):
    assert_agrees(text)


def test_loads_of_the_documents_pyrunc_reads():
    """A spec as runc writes it, compact and pretty; a state record; hooks' state."""
    spec = {"ociVersion": "1.0.2", "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
            "args": ["sh"], "env": ["PATH=/usr/bin", "TERM=xterm"], "cwd": "/",
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
            "root": {"path": "rootfs", "readonly": True}, "hostname": "h\u00e9",
            "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}],
                                    "memory": {"limit": 2**63 - 1, "swappiness": -1}},
                      "maskedPaths": ["/proc/kcore"], "sysctl": {}}}
    for layout in ({}, {"indent": "\t"}, {"separators": (",", ":")}):
        text = json.dumps(spec, **layout)
        assert_agrees(text)
        assert jsonlite.loads(text) == spec
    assert jsonlite.dumps(spec) == json.dumps(spec, separators=(",", ":"))
