"""Outcome lines: many people's claim outcomes in as few chat lines as fit."""

from __future__ import annotations

import pytest

from bot.coalesce import SEPARATOR, Mention, OutcomeLines

SOLD_OUT = "sold out — type !waitlist to be next"
HELD = "you hold a unit — your pay link is in your Discord DMs"


def drain(lines: OutcomeLines) -> list[tuple[str, list[Mention]]]:
    taken = []
    while (line := lines.take_line()) is not None:
        taken.append(line)
    return taken


def test_outcomes_are_grouped_by_what_happened_in_order_of_arrival() -> None:
    lines = OutcomeLines(500)
    for who, brief in [("@ann", HELD), ("@cy", SOLD_OUT), ("@bo", HELD), ("@dee", SOLD_OUT)]:
        lines.add(Mention(who, brief))
    assert len(lines) == 4
    [(text, said)] = drain(lines)
    assert text == f"@ann @bo: {HELD}{SEPARATOR}@cy @dee: {SOLD_OUT}"
    assert [m.who for m in said] == ["@ann", "@bo", "@cy", "@dee"]
    assert len(lines) == 0 and lines.take_line() is None


def test_300_outcomes_fit_in_a_handful_of_lines_within_the_limit_naming_everyone() -> None:
    lines = OutcomeLines(500)
    people = [f"@viewer{i:04d}" for i in range(300)]
    for i, who in enumerate(people):
        lines.add(Mention(who, HELD if i < 10 else SOLD_OUT))
    taken = drain(lines)
    assert all(len(text) <= 500 for text, _ in taken)
    assert [m.who for _, said in taken for m in said] == people  # everyone, once, in order
    assert len(taken) <= 9
    for text, said in taken:  # each line names exactly the people it says it names
        assert all(m.who in text.split() or f"{m.who}:" in text for m in said)


def test_a_brief_too_long_for_any_line_is_cut_and_nobody_is_lost() -> None:
    lines = OutcomeLines(40)
    lines.add(Mention("@ann", "x" * 100))
    lines.add(Mention("@bo", "x" * 100))
    taken = drain(lines)
    assert [len(text) <= 40 for text, _ in taken] == [True, True]
    assert [m.who for _, said in taken for m in said] == ["@ann", "@bo"]


def test_a_limit_too_small_for_any_line_is_refused() -> None:
    with pytest.raises(ValueError, match="at least a name"):
        OutcomeLines(10)
