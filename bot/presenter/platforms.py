"""What the platform adapters say themselves, beside the commands' replies and the hub's
posts: where a pay link went, account linking, and each adapter's own refusals. Wording
lives here so that every line dropcast says in chat is found in ``bot.presenter``."""

from __future__ import annotations

from bot.messages import Button

# -- the platforms' private channels, as their plugins declare them ----------------------------

DISCORD_DMS = "Discord DMs"
TWITCH_WHISPERS = "Twitch whispers"
STUDIO_CHAT = "studio chat"
# What reaches a Twitch viewer who did not opt in to whispers (a subscription's refusal).
WITHOUT_WHISPERS = "reminders go by Discord DM: link your Discord account (!link)"

# -- where a claim's pay link went (Twitch outcome lines) ---------------------------------------


def in_private(channel: str) -> str:
    """``channel``: a platform's private channel as it declares it ("Discord DMs")."""
    return f"in your {channel}"


def on_signed_in_page(page: str | None) -> str:
    return f"on the drop page you signed in to {page or ''}".rstrip()


def pay_link_went(brief: str, where: str) -> str:
    return f"{brief} — your pay link is {where}"


def check_out_on_page(brief: str, page: str) -> str:
    """No private way to reach them: the drop page holds the claim."""
    return f"{brief} — check out on the drop page {page}".rstrip()


# -- account linking (a code from Discord /link, typed in Twitch chat) -------------------------

LINKING_OFF = "Account linking is not set up on this server."
LINK_CODE_UNKNOWN = "That code is unknown or expired: get a new one."


def link_code_issued(code: str) -> str:
    return (
        f"Type `!link {code}` in the Twitch chat within 10 minutes: your Twitch claims "
        "then get their pay links here, by DM."
    )


def link_code_needed(name: str, prefix: str) -> str:
    # Codes are only ever issued privately (Discord /link): one posted in public chat could
    # be redeemed by anyone reading it.
    return (
        f"{name}, use /link in our Discord to get a private code, then type {prefix}link CODE here."
    )


def accounts_linked(name: str) -> str:
    return f"{name}, your Twitch and Discord accounts are linked."


# -- buttons (where a platform has them) -------------------------------------------------------

BUTTON_LABELS = {Button.BUY: "Buy", Button.WAITLIST: "Join waitlist", Button.REMIND: "Remind me"}
PAY_NOW = "Pay now"  # the personal link, shown only to its owner
DROP_PAGE = "Drop page"

# -- Discord interactions ----------------------------------------------------------------------

STALE_BUTTON = "That button belongs to an earlier drop. /drop shows the current one."
SENT_PRIVATELY = "I've sent you the answer privately."
FAILED = "Sorry, that did not work. Please try again in a moment."

# -- the studio --------------------------------------------------------------------------------

NO_SESSION = "This tab has no studio session: reload the studio page (cookies must be allowed)."
NAME_TAKEN = "That name is taken in this studio; pick another."
NAMES_FULL = "The studio has too many names right now; try again later."
PICK_A_NAME = "Pick a name: letters, digits, _ . -"
CREATOR_ONLY = (
    "Creator commands need the dashboard sign-in: open /dashboard?token=<admin token> in "
    "this browser (the demo prints the link), then reload the studio."
)


def slow_down(seconds: str) -> str:
    return f"Slow down: try again in {seconds} s."
