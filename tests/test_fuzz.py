"""Hostile values for every declared input: the one parser directly (Hypothesis), every page's every query
parameter (AppTest) and every typed CLI argument. Nothing may raise, and nothing stored may change.

The lists come from the declarations (core/addresses.py, the CLI's parser), so a new parameter or argument is
fuzzed here without another line."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from core.addresses import PAGE_PARAMS
from core.cli import build_parser, main
from core.params import KINDS, MAX_ID, Param, ParamError, read_query
from core.storage.db import get_engine
from tests.test_app import run_page

HOSTILE = ["²", "99999999999999999999", "-1", "0", "nan", "/etc/passwd", "<b>x</b>&amp;'\"", "9" * 5000]
DIGITS = st.sampled_from(["0", "1", "9", "²", "³", "٣", "߀", "१", "-", " ", "_", ".", "e", "+"])
NUMBERISH = st.lists(DIGITS, max_size=40).map("".join)
PARAMS = [Param("id", "id"), Param("count", "int", default=3, minimum=1, maximum=50),
          Param("share", "float", default=0.5, minimum=0.0, maximum=1.0),
          Param("mode", "choice", default="a", choices=("a", "b")),
          Param("names", "names", default=None, choices=lambda: ["x", "y"]), Param("free", "text", default="", max_length=100)]
assert {p.kind for p in PARAMS} == set(KINDS)  # every kind the parser knows is fuzzed


def check_value(param: Param, value) -> None:
    if param.kind == "id":
        assert isinstance(value, int) and 1 <= value <= MAX_ID
    elif param.kind == "int":
        assert isinstance(value, int) and param.minimum <= value <= param.maximum
    elif param.kind == "float":
        assert isinstance(value, float) and math.isfinite(value) and param.minimum <= value <= param.maximum
    elif param.kind == "choice":
        assert value in param.allowed()
    elif param.kind == "names":
        assert set(value) <= set(param.allowed())
    else:
        assert isinstance(value, str) and len(value) <= param.max_length


@settings(max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(NUMBERISH, st.text(max_size=200), st.integers(-(2**80), 2**80).map(str),
                     st.floats(allow_nan=True, allow_infinity=True).map(str),
                     st.sampled_from(["x" * 100_000, "1" * 100_000, ""])))
def test_the_parser_gives_a_value_in_bounds_or_one_message(raw):
    for param in PARAMS:
        try:
            value = param.parse(raw)
        except ParamError as exc:
            assert str(exc).count("\n") == 0 and len(str(exc)) < 400 and f"'{param.name}'" in str(exc)
            continue
        check_value(param, value)
    parsed = read_query(PARAMS, {p.name: raw for p in PARAMS})
    assert set(parsed.values) == {p.name for p in PARAMS}
    for param in PARAMS:
        if parsed[param.name] is not None and parsed[param.name] != param.default:
            check_value(param, parsed[param.name])


def test_unicode_digits_and_huge_ids_are_refused_in_one_sentence():
    with pytest.raises(ParamError, match="'id' \\(an id\\) must be a whole number, not '²'"):
        Param("id", "id").parse("²")
    with pytest.raises(ParamError, match="must be between 1 and 9,223,372,036,854,775,807"):
        Param("id", "id").parse("99999999999999999999")
    with pytest.raises(ParamError, match="5,000-digit"):
        Param("id", "id").parse("9" * 5000)
    assert Param("id", "id").parse(str(MAX_ID)) == MAX_ID
    parsed = read_query([Param("job", "id")], {"job": "²"})
    assert parsed["job"] is None and parsed.problems == [
        "In this address, 'job' (an id) must be a whole number, not '²'. None is chosen."]


def stored(engine) -> dict[str, int]:
    """Rows per table: what a hostile address must leave as it was. Except `stored_text`: a `text=` value is free text
    the page stores by design, to name it by a short key in the address (core/storage/texts.py); the test below
    checks that only such texts were stored there."""
    with engine.connect() as connection:
        return {t: connection.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()
                for t in inspect(engine).get_table_names() if t != "stored_text"}


@pytest.mark.parametrize("page", [p for p, declared in PAGE_PARAMS.items() if declared])
def test_every_query_parameter_of_every_page_survives_hostile_values(page, home, web_server):
    from core.library.snapshots import snapshot_url

    engine = get_engine()
    snapshot_url(engine, f"{web_server}/article", ["city"])  # so that snapshot pages have something to list
    before = stored(engine)
    for value in HOSTILE:
        app = run_page(page, **{p.name: value for p in PAGE_PARAMS[page]})
        assert not app.exception, (page, value[:40], [e.message for e in app.exception])
        shown = " ".join(str(e.value) for kind in ("markdown", "error", "warning", "info", "caption", "text")
                         for e in getattr(app, kind))
        assert "Traceback" not in shown and "/site-packages/" not in shown
    assert stored(engine) == before
    with engine.connect() as connection:
        kept = [row[0] for row in connection.execute(text("SELECT text FROM stored_text")).all()]
    assert all(any(t.strip() == v.strip() for v in HOSTILE) for t in kept), kept  # nothing but the links' own texts


def typed_arguments(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, argument) of every typed argument (a command's old alias is the same parser: once)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from typed_arguments(sub, (*path, name))
        elif action.type is not None and callable(action.type) and action.type.__module__ == "core.params":
            yield path, action


def test_every_typed_cli_argument_refuses_hostile_values_in_one_line(capsys):
    found = list(typed_arguments(build_parser()))
    assert len(found) > 40  # the walk reaches the real commands
    for path, action in found:
        for value in HOSTILE:
            argv = [*path, action.option_strings[0], value] if action.option_strings else [*path, value]
            try:
                build_parser().parse_known_args(argv)
            except SystemExit as exc:
                assert exc.code == 2
                error = capsys.readouterr().err.strip().splitlines()[-1]
                assert error.startswith(f"rashomon {' '.join(path)}: ") and "\n" not in error, error


def test_an_id_at_the_top_of_the_range_gets_one_line_from_every_command(home, capsys):
    """Ids up to 2^63 - 1 reach the store (the bound is the database's); each command answers in one line."""
    commands = [["snapshot", "show", str(MAX_ID)], ["snapshot", "refresh", str(MAX_ID)], ["corpus", "status", str(MAX_ID)],
                ["corpus", "export", str(MAX_ID)], ["demo", "show", str(MAX_ID)], ["tasks", "stop", str(MAX_ID)],
                ["corpus", "stop", str(MAX_ID)]]
    before = stored(get_engine())
    for argv in commands:
        assert main(argv) == 1, argv
        error = capsys.readouterr().err.strip()
        assert error.startswith("rashomon: ") and "\n" not in error, (argv, error)
    assert stored(get_engine()) == before


@pytest.mark.parametrize("argv", [
    ["snapshot", "show", "99999999999999999999"], ["snapshot", "refresh", "99999999999999999999"],
    ["corpus", "status", "99999999999999999999"], ["corpus", "export", "99999999999999999999"],
    ["demo", "show", "99999999999999999999"], ["tasks", "stop", "99999999999999999999"],
    ["tasks", "--limit", "99999999999999999999"], ["compare", "--snapshot", "99999999999999999999"],
    ["worker", "--threads", "-5"], ["snapshot", "show", "²"],
])
def test_the_cli_inputs_that_gave_tracebacks_give_one_line(argv, home, capsys):
    """Each of these ended in a Python traceback (SQLite's integer overflow, int("²"), torch threads -5)."""
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bookmark_dates_that_are_not_ascii_numbers_are_ignored(home):
    from core.library.bookmarks import import_bookmarks, parse_add_date

    assert parse_add_date("²³") is None and parse_add_date("4" * 4000) is None and parse_add_date("5" * 5000) is None
    assert parse_add_date("1700000000").year == 2023
    content = "".join(f'<DT><A HREF="https://example.org/{n}" ADD_DATE="{date}">x</A>\n'
                      for n, date in enumerate(["²³", "4" * 4000, "1700000000"]))
    assert import_bookmarks(get_engine(), content).added == 3


def test_a_label_given_in_unicode_digits_is_an_unknown_label_not_a_traceback(home, capsys):
    """`--target ²` passed str.isdigit() and failed int(): now it is an unknown label, in one line."""
    assert main(["explain", "--text", "fine words", "--methods", "occlusion", "--target", "²"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("rashomon: Unknown label '²'") and "\n" not in error
