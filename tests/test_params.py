"""Declared settings: `Param.check` converts each value to its kind and checks it against its range, choices and
list rules with a message naming the setting; `check_fields` does that for every declared field of a dataclass."""
from dataclasses import dataclass, field

import pytest

from probe.errors import ProbeError
from probe.params import Param, check_fields, setting


def named(name: str = "x", **declaration) -> Param:
    return Param("help", **declaration).named(name, None)


def refusal(param: Param, value) -> str:
    with pytest.raises(ProbeError) as refused:
        param.check(value)
    return str(refused.value)


def test_values_become_their_kind():
    """Numbers from text or numbers, whole numbers only for int, finite only for float, yes/no words for bool,
    stripped text for str."""
    assert named(kind=int).check("3") == 3 and type(named(kind=int).check(4.0)) is int
    assert named(kind=float).check("0.25") == 0.25 and type(named(kind=float).check(2)) is float
    assert [named(kind=bool).check(v) for v in ("Yes", "0", "TRUE", "no", True, False)] == \
        [True, False, True, False, True, False]
    assert named(kind=str).check("  cat ") == "cat"
    assert refusal(named("steps", kind=int), "2.5") == "steps must be a whole number, got '2.5'"
    assert refusal(named("lr", kind=float), "inf") == "lr must be a number, got 'inf'"
    assert refusal(named("lr", kind=float), "fast") == "lr must be a number, got 'fast'"
    assert refusal(named("on", kind=bool), "maybe") == "on must be true or false, got 'maybe'"
    assert refusal(named("on", kind=bool), 1) == "on must be true or false, got 1"


def test_ranges_include_or_exclude_their_ends():
    """A closed end accepts the value at it, an open end refuses it; values beyond are refused, naming the range
    and the unit."""
    closed = named("budget", low=0.0, high=1.0, unit="[0,1] pixels")
    assert closed.check(0.0) == 0.0 and closed.check(1.0) == 1.0
    assert refusal(closed, 1.5) == "budget must be in [0, 1] [0,1] pixels, got 1.5"
    assert refusal(closed, -0.01) == "budget must be in [0, 1] [0,1] pixels, got -0.01"
    opened = named("eps", low=0.0, high=1.0, open_low=True, open_high=True)
    assert opened.check(0.5) == 0.5
    assert refusal(opened, 0.0) == "eps must be in (0, 1), got 0.0"
    assert refusal(opened, 1.0) == "eps must be in (0, 1), got 1.0"
    steps = named("steps", kind=int, low=1)
    assert steps.check(10**9) == 10**9 and refusal(steps, 0) == "steps must be in [1, inf], got 0"
    assert named("top", high=2.0).check(-1e9) == -1e9 and named("t", kind=str, low=1).check("0") == "0"


def test_choices_lists_and_missing_values():
    """Choices are checked after conversion; a list setting splits text at commas (dropping blanks) and checks
    each value; None (and an empty list) is allowed only for an optional setting."""
    mode = named("mode", kind=str, choices=("fast", "paper"))
    assert mode.check(" paper") == "paper"
    assert refusal(mode, "slow") == "mode must be one of fast, paper, got 'slow'"
    sizes = named("sizes", kind=int, many=True, low=1)
    assert sizes.check("1, 2,,3 ") == [1, 2, 3] and sizes.check((4, "5")) == [4, 5]
    assert refusal(sizes, "1,0") == "sizes must be in [1, inf], got '0'"
    assert refusal(sizes, " , ") == "sizes needs at least one value"
    assert named("tags", kind=str, many=True, optional=True).check("") == []
    assert named("seed", kind=int, optional=True).check(None) is None
    assert refusal(named("seed", kind=int), None).startswith("seed is required: help")


@dataclass(frozen=True)
class Declared:
    steps: int = setting(5, "steps", kind=int, low=1)
    lr: float = setting(0.1, "step size", low=0, open_low=True)
    survive: tuple = setting((), "transformations", kind=str, many=True, optional=True, choices=("jpeg", "resize"))
    note: str = field(default="free")   # not declared: left alone

    def __post_init__(self):
        check_fields(self)


def test_check_fields_converts_and_checks_every_declared_field():
    """Every declared field is converted in place (lists become tuples, None for an optional list the empty tuple);
    a field out of its range refuses the whole instance; undeclared fields are not touched."""
    made = Declared(steps="7", lr="0.5", survive="jpeg, resize", note=" kept ")
    assert (made.steps, made.lr, made.survive, made.note) == (7, 0.5, ("jpeg", "resize"), " kept ")
    assert type(made.steps) is int and Declared(survive=None).survive == ()
    assert Declared().survive == () and Declared(survive=["jpeg"]).survive == ("jpeg",)
    with pytest.raises(ProbeError, match=r"^lr must be in \(0, inf\], got 0$"):
        Declared(lr=0)
    with pytest.raises(ProbeError, match="^survive must be one of jpeg, resize, got 'crop'$"):
        Declared(survive="crop")


class Unprintable:
    def __str__(self):
        raise ValueError("no text")

    def __repr__(self):
        return "Unprintable()"


def test_a_value_with_no_text_is_refused_as_text():
    """A text setting given a value that has no text form is refused, saying text was wanted."""
    assert refusal(named("label", kind=str), Unprintable()) == "label must be text, got Unprintable()"
