"""`dropcast pickup-link`: the shop's own signed link to its pickup list."""

from __future__ import annotations

from commerce.web.api import pickup_url
from commerce.web.context import PickupKeys

SECRET = "cli-secret-key-0123456789abcdefgh"
DELI = "corner-deli"


def test_pickup_link_prints_the_shops_own_url(dropcast, monkeypatch):
    monkeypatch.setenv("DROPCAST_SECURITY__SECRET_KEY", SECRET)
    code, out, _ = dropcast("pickup-link", DELI)
    assert code == 0
    expected = pickup_url("https://drops.example.com", PickupKeys(SECRET), DELI)
    assert out.strip() == expected
    assert expected.startswith(f"https://drops.example.com/pickup/{DELI}?key=")
    code, _, err = dropcast("pickup-link", "Not A Slug")
    assert code == 2 and "location" in err
