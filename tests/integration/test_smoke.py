from commerce.domain.model import ClaimOutcome
from tests.helpers import capsule_spec, live_drop


async def test_claim_and_pay(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2))
    c1 = await commerce.customers.resolve("discord:1")
    r = await commerce.claims.claim(drop_id, c1)
    assert r.outcome is ClaimOutcome.HELD
    order = await commerce.orders.checkout(r.hold.id, c1, "test")
    res = await commerce.orders.confirm_payment(order.id, "pay_1")
    assert res.outcome == "paid"
    view = await commerce.drops.view(drop_id)
    assert view.stock[0].sold == 1
