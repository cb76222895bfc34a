"""What a command says when its input is wrong: the reply, and nothing changed."""

from __future__ import annotations

from bot.presenter import replies


class CommandError(Exception):
    """Malformed or refused: the message is the reply, nothing changed."""


def number(value: str, what: str) -> int:
    """``value`` as a whole number, or a reply naming ``what`` it should have been."""
    if not value.isdigit():
        raise CommandError(replies.not_a_number(what, value))
    return int(value)
