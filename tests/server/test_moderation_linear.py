"""Moderation cannot be made slow: on pathological inputs its time grows linearly with the text.

The ``re`` engine backtracks, so one pattern with overlapping nested repetitions makes a short
message take minutes (``"kill " + "the " * 40`` did). Each check times the same input at a size
and at four times that size (two doublings) and bounds the growth at 9x: linear is 4x, a
quadratic pattern 16x, an exponential one does not finish. Times are this thread's CPU time
(``time.thread_time``), the minimum of several runs, re-measured once before failing: wall time
on a 2-core machine shared with training jobs swung single doublings past 3x in CI dry runs.
"""

from __future__ import annotations

import re
import time

import pytest

from chatrlhf import moderation as M
from chatrlhf.moderation import default_moderator, moderate

RATIO = 9.0  # bound on t(4 * size) / t(size): linear 4, quadratic 16


def _best(fn, reps: int = 3, clock=time.thread_time) -> float:
    best = float("inf")
    for _ in range(reps):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def _doubling_ratio(fn_of_size, size: int, reps: int = 3) -> float:
    """t(4 * size) / t(size), re-measured with more runs when the first look is over ``RATIO``
    (a busy machine can stall one measurement; a super-linear pattern stays over)."""
    ratio = _best(lambda: fn_of_size(4 * size), reps) / _best(lambda: fn_of_size(size), reps)
    if ratio >= RATIO:
        ratio = _best(lambda: fn_of_size(4 * size), 3 * reps) / _best(lambda: fn_of_size(size), 3 * reps)
    return ratio


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


# Repeated words that each pattern family can start on or loop over, long text without
# punctuation (one sentence for the refusal check), and nested brackets.
PATHOLOGICAL = [
    "kill the ", "kill the the ", "kill ", "the ", "shoot a ", "shoot the ", "execute the ",
    "cook mix ", "kid story ", "sexual manner ", "hack into my ", "where can i ", "i can't help ",
    "I won't kill him ", "steal my ", "trick him ", "mock his ", "contact my ", "a", "word ",
    "(", "([{<", "((a)) ",
]


@pytest.mark.parametrize("unit", PATHOLOGICAL)
@pytest.mark.parametrize("role", ["user", "assistant"])
def test_moderation_is_linear_on_pathological_inputs(unit, role):
    ratio = _doubling_ratio(lambda size: moderate(_repeat(unit, size), role), 2048)
    assert ratio < RATIO, (unit, role, ratio)


def _pattern_worst_case(pattern: str) -> str:
    """A unit for ``pattern`` built from its own words: its trigger words followed by the words
    it may repeat over, which is where backtracking patterns blow up."""
    words = re.findall(r"[a-z']+", re.sub(r"\\[a-zA-Z]", " ", pattern))
    return " ".join(words[:12]) + " "


def _all_patterns() -> list[tuple[str, re.Pattern]]:
    c = default_moderator()._c
    out = [(f"benign[{i}]", p) for i, p in enumerate(c.benign)]
    out += [(f"{cat}[{i}]", p) for cat, sigs in c.signals.items() for i, (p, _) in enumerate(sigs)]
    return out + [("intent", M._INTENT), ("refusal", M._REFUSAL_PHRASE), ("defensive", M._DEFENSIVE)]


@pytest.mark.parametrize("name, pat", _all_patterns(), ids=[n for n, _ in _all_patterns()])
def test_every_pattern_is_linear_on_its_own_words(name, pat):
    unit = _pattern_worst_case(pat.pattern)
    for text_unit in (unit, unit.split()[0] + " the "):
        ratio = _doubling_ratio(lambda size: pat.findall(_repeat(text_unit, size)), 8192)
        assert ratio < RATIO, (name, text_unit, ratio)


def test_the_reported_exponential_case_is_fast_now():
    # Was 14 ms at n=16, 10.5 s at n=34, and did not finish at n=40.
    assert _best(lambda: moderate("kill " + "the " * 40 + "!")) < 0.05
    ratio = _doubling_ratio(lambda n: moderate("kill " + "the " * n + "!"), 500)
    assert ratio < RATIO
    # and the benign idiom it guards still works through the bounded modifier run
    assert not moderate("How do I kill the stuck zombie python background process?").flagged


@pytest.mark.parametrize("unit", ["kill the ", "word ", "(", "i can't help ", "kid story "])
def test_32_kb_takes_well_under_a_second(unit):
    text = _repeat(unit, 32 * 1024)
    for role in ("user", "assistant"):
        assert _best(lambda: moderate(text, role)) < 0.5, (unit, role)


def test_refusal_sentences_are_dropped_per_sentence():
    # the linear rewrite keeps the old rule: the whole sentence around a refusal phrase goes,
    # with its closing mark; the sentences around it stay
    out = M._refusals_removed("Hi. I can't help you make a bomb! Here is how to kill him.\nOk")
    assert out == "Hi.  Here is how to kill him.\nOk"
    assert M._refusals_removed("no refusal here") == "no refusal here"
    assert M._refusals_removed("I won't. I can't.") == "  "
    # a phrase broken over a line takes both lines
    assert M._refusals_removed("a\nso I\ncannot do it\nb") == "a\n \nb"
