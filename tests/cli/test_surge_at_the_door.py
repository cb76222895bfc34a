"""A surge as the served process meets it: the kernel queues a burst of connections while
the server is busy (``web.backlog``), and a rehearsal tells a claim refused because the
drop closed (its last unit paid) from an error."""

from __future__ import annotations

import asyncio
import select
import socket
from pathlib import Path

import pytest

from commerce.domain.model import DropState
from commerce.dropfile import validate_spec
from config.settings import Settings
from dropcast.rehearse import run_rehearsal
from tests.e2e.processes import free_port
from tests.helpers import PATIENCE, capsule_spec, serving

BURST = 300  # viewers whose connections arrive together, as in the README's rehearsal
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def settings_for(database_url: str) -> Settings:
    port = free_port()
    return Settings(
        database={"url": database_url},
        web={"port": port, "public_url": f"http://127.0.0.1:{port}"},
    )


def connected_while_blocked(port: int, count: int) -> int:
    """Open ``count`` connections while this thread (the server's event loop) is busy and
    accepts none: how many the kernel completes. Waits until all are, or PATIENCE passed
    (a connection the kernel dropped is retried by the client a second later, three later,
    … and dropped again while the queue stays full)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        poller = select.poll()
        waiting = {sock.fileno(): sock for sock in sockets}
        for fd in waiting:
            poller.register(fd, select.POLLOUT)
        done = 0
        deadline = asyncio.get_running_loop().time() + PATIENCE
        while waiting and asyncio.get_running_loop().time() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                if waiting.pop(fd).getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    done += 1
        return done
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.skipif(
    not SOMAXCONN.exists() or int(SOMAXCONN.read_text()) < BURST,
    reason="the kernel caps every listen queue below the burst (net.core.somaxconn)",
)
async def test_a_burst_of_connections_waits_in_the_queue_while_the_server_is_busy(
    tmp_path: Path,
) -> None:
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'dropcast.db'}")
    async with serving(settings):
        # No await from here on: the server's loop is this one, so it accepts nothing until
        # the kernel has taken in (or dropped) the whole burst.
        assert connected_while_blocked(settings.web.port, BURST) == BURST


async def test_a_claim_on_a_drop_its_last_payment_closed_is_refused_not_an_error(
    database_url: str,
) -> None:
    async with serving(settings_for(database_url)) as (app, base):
        drop_id = await app.commerce.drops.create(validate_spec(capsule_spec(1)))
        await app.commerce.drops.open(drop_id)

        async def rehearse(viewers: int) -> dict[str, object]:
            report = await run_rehearsal(
                app, drop_id, viewers=viewers, arrival="burst", url=base, ramp_seconds=1
            )
            return report.summary()

        sold = await rehearse(1)
        assert (sold["holds"], sold["paid"], sold["errors"]) == (1, 1, 0), sold
        # Every unit is paid: the drop has closed itself. Late viewers are refused, as
        # they would be by a sold-out drop, and the rehearsal says so.
        assert (await app.commerce.drops.get(drop_id)).state is DropState.CLOSED
        late = await rehearse(3)
        assert (late["holds"], late["closed"], late["sold_out"]) == (0, 3, 0), late
        assert (late["errors"], late["error_kinds"], late["oversold"]) == (0, {}, 0), late
