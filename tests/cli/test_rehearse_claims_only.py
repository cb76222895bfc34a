"""`rehearse --claims-only`: the same surge against any server, e.g. the bare aiohttp floor
``bench/rehearse.py`` compares with. Viewers only open their links; nothing else is asked
of the server (no drop state, no pay). Both engines (the links are issued from the
database, as every rehearsal's are)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from commerce.dropfile import validate_spec
from config.settings import Settings
from dropcast.app import App
from dropcast.rehearse import run_rehearsal
from tests.helpers import capsule_spec


async def test_a_claims_only_rehearsal_runs_against_a_server_that_is_not_dropcast(
    database_url: str,
) -> None:
    seen: list[str] = []

    async def floor(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="<html>a fixed page</html>", content_type="text/html")

    floor_app = web.Application()
    floor_app.router.add_get("/c/{token}", floor)
    server = TestServer(floor_app)
    await server.start_server()
    app = await App.open(Settings(database={"url": database_url}), hand_off=True)
    try:
        drop_id = await app.commerce.drops.create(validate_spec(capsule_spec(3)))
        await app.commerce.drops.open(drop_id)
        report = await run_rehearsal(
            app,
            drop_id,
            viewers=12,
            arrival="burst",
            url=str(server.make_url("")),
            ramp_seconds=1,
            claims_only=True,
        )
    finally:
        await app.close()
        await server.close()
    summary = report.summary()
    assert summary["answered 200"] == 12 and summary["errors"] == 0, summary
    assert summary["claim_p50_ms"] is not None and summary["oversold"] == 0
    assert len(seen) == 12 and len(set(seen)) == 12  # one distinct personal link each
    assert all(path.startswith("/c/") for path in seen)  # no state read, no pay


def test_claims_only_and_chat_are_refused_together(dropcast) -> None:
    code, _, err = dropcast("rehearse", "1", "--claims-only", "--chat")
    assert code == 2 and "--chat types !buy: choose one" in err, err
    assert len(err.strip().splitlines()) == 1
