import json

import pytest

from lyco_lint.jsonpos import JSONSyntaxError, parse, to_python, walk


def test_positions_of_keys_and_values_are_one_based_with_exclusive_end():
    root = parse('{\n  "algo": "lokr",\n  "dim": [1, 22]\n}')
    algo = root.member("algo")
    assert (algo.key_span.line, algo.key_span.column, algo.key_span.end_column) == (2, 3, 9)
    assert (algo.value.span.line, algo.value.span.column, algo.value.span.end_column) == (2, 11, 17)
    second = root.get("dim").items[1]
    assert (second.span.line, second.span.column, second.span.end_column) == (3, 14, 16)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [true, false, null], "c": {"d": "x\\n\\u00e9\\ud83d\\ude00"}}',
        "[1, -2.5, 3e10, -0, 1E-3]",
        '"just a string"',
        '{"nan": NaN, "inf": Infinity, "ninf": -Infinity}',
        "\ufeff{}",
    ],
)
def test_values_equal_the_standard_library(text):
    parsed = to_python(parse(text))
    expected = json.loads(text.lstrip("\ufeff"))
    assert json.dumps(parsed, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_duplicate_keys_are_kept_as_members_and_the_last_one_wins():
    root = parse('{"factor": 4, "factor": 8}')
    assert [m.key for m in root.members] == ["factor", "factor"]
    assert to_python(root) == {"factor": 8}


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ('{\n  "a": 1,\n}', 2, 9, "trailing comma"),
        ('[1, 2,]', 1, 6, "trailing comma"),
        ('{\n  // note\n  "a": 1\n}', 2, 3, "comments are not allowed"),
        ("{'a': 1}", 1, 2, "double quotes"),
        ('{"a": True}', 1, 7, "write true"),
        ('{"a": None}', 1, 7, "write null"),
        ('{"a" 1}', 1, 6, "expected ':'"),
        ('{"a": 1 "b": 2}', 1, 9, "comma missing"),
        ('{"a": "x', 1, 9, "unterminated string"),
        ("", 1, 1, "empty"),
        ('{"a": 1} {}', 1, 10, "extra data"),
        ('{"a": "\\q"}', 1, 8, "invalid escape"),
    ],
)
def test_syntax_errors_say_what_and_where(text, line, column, words):
    with pytest.raises(JSONSyntaxError) as raised:
        parse(text)
    assert (raised.value.line, raised.value.column) == (line, column)
    assert words in raised.value.message


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(JSONSyntaxError):
        parse("[" * 5000 + "]" * 5000)


def test_walk_yields_json_pointers_with_escaping():
    root = parse('{"a/b": {"c~d": [10]}}')
    pointers = [pointer for pointer, _node, _member in walk(root)]
    assert pointers == ["", "/a~1b", "/a~1b/c~0d", "/a~1b/c~0d/0"]
