"""jsonlite: the fast path is json.loads's own scanner, and every failure is reported as
json.loads reports it (a JSONDecodeError with a position), also in a fresh `python -I`
where nothing imported json.decoder (the C scanner then raised SystemError)."""

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
