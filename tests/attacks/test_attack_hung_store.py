"""
Attack: a really hung PostgreSQL link under the real daemon (issue #15, item 6).

The gateway reaches PostgreSQL through a TCP relay in the test that can be told to blackhole: it stops
forwarding both ways without closing anything, as a dead network path does (the gateway's kernel still sees
a healthy peer, so neither keepalives nor a server-side statement timeout end the wait).  Requests are
served, the link goes dark, more requests are served, SIGTERM: the daemon must exit within its stop deadline
with the rows it could not write in the on-disk spool; restarted with the link healthy, every row reaches
PostgreSQL, once.

And the store's own connections really carry the statement timeout and the TCP keepalives that make a hung
link noticed without a stop (checked on the connection's socket and with C{SHOW}).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

from conftest import PG_BASE, postgres_schema  # noqa: E402
from daemon_harness import Simulator, gateway_config, start_gateway, start_simulator, subaccount  # noqa: E402
from sapproxy.usage import open_database  # noqa: E402
from sapproxy.usage.spool import read_rows  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
HI = [{"role": "user", "content": "hi"}]
#: The usage store's stop deadline (L{sapproxy.usage.store.UsageStore.stop_timeout}).
STOP_DEADLINE = 10.0


@pytest.fixture
def schema() -> Iterator[str]:
    with postgres_schema() as name:
        yield name


class Relay:
    """
    A TCP relay to PostgreSQL on plain sockets and threads (none of them the daemon's reactor).  While
    blackholed it forwards nothing either way and closes nothing: bytes already read wait, new connections
    are accepted and left unanswered.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()

    def blackhole(self) -> None:
        self.flowing.clear()

    def heal(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self._closed = True
        self.flowing.set()
        for s in [self.listener, *self._sockets]:
            try:
                s.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        self.flowing.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        self.connections += 1
        self._sockets.append(upstream)
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                self.flowing.wait()  # blackholed: hold what was read, forward nothing
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pg_rows(schema: str) -> list[str]:
    import psycopg

    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        try:
            return [r[0] for r in conn.execute(f"SELECT user_agent FROM {schema}.usage_records").fetchall()]
        except psycopg.errors.UndefinedTable:
            return []


def wait_rows(schema: str, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    rows = pg_rows(schema)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = pg_rows(schema)
    return rows


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    s = start_simulator(tmp_path_factory.mktemp("hung-store-sim"))
    try:
        yield s
    finally:
        s.daemon.stop()


@pytest.mark.integration
def test_sigterm_with_a_hung_postgresql_link_spools_and_a_restart_delivers_every_row(
        tmp_path: Path, sim: Simulator, schema: str) -> None:
    relay = Relay((PG_HOST, PG_PORT))
    url = f"postgresql://postgres@127.0.0.1:{relay.port}/test?options=-csearch_path%3D{schema}"
    config = gateway_config(tmp_path, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})}, usage_store=url)
    spool = tmp_path / "usage-spool.jsonl"

    def serve(tag: str, chats: int, responses: int) -> None:
        for i in range(chats):
            reply = gw.post("/v1/chat/completions", {"model": "gpt-4.1", "max_tokens": 5, "messages": HI},
                            headers=gw.headers(**{"User-Agent": f"{tag}-chat-{i}"}))
            assert reply.status == 200, reply
        for i in range(responses):  # stored responses: written to the same database at stop
            reply = gw.post("/v1/responses", {"model": "gpt-4.1", "input": "hi", "max_output_tokens": 16},
                            headers=gw.headers(**{"User-Agent": f"{tag}-resp-{i}"}))
            assert reply.status == 200, reply

    gw = start_gateway(tmp_path, config)
    try:
        serve("before", 40, 3)
        assert len(wait_rows(schema, 43, timeout=15)) == 43
        relay.blackhole()
        serve("during", 40, 2)
        time.sleep(2.5)  # the next flushes start, and hang on the dark link
        # A stored response whose batch is still queued at SIGTERM (it is written every 0.5 s).
        serve("last", 0, 1)
        took, code = sigterm(gw)
    finally:
        gw.daemon.stop()
    log = gw.log_text()
    assert code in (0, -15), log[-3000:]
    # Nothing is in flight, so the drain is immediate: the stop deadline is what bounds the exit.
    assert took < STOP_DEADLINE + 3.0, (took, log[-3000:])
    assert "usage store did not answer within 10 s at stop" in log, log[-3000:]
    spooled = sorted(r.user_agent for r in read_rows(spool))
    assert spooled == sorted([f"during-chat-{i}" for i in range(40)] + ["during-resp-0", "during-resp-1",
                                                                         "last-resp-0"])
    assert "Traceback" not in log, log[-3000:]

    relay.heal()
    gw = start_gateway(tmp_path, config, name="gw2")
    try:
        rows = wait_rows(schema, 86, timeout=30)
        time.sleep(1.5)  # a row written twice would show now
        rows = pg_rows(schema)
    finally:
        gw.daemon.stop()
        relay.close()
    expected = ([f"{tag}-chat-{i}" for tag in ("before", "during") for i in range(40)]
                + ["before-resp-0", "before-resp-1", "before-resp-2", "during-resp-0", "during-resp-1",
                   "last-resp-0"])
    assert sorted(rows) == sorted(expected), (len(rows), gw.log_text()[-3000:])
    assert not spool.exists() or spool.stat().st_size == 0


@pytest.mark.integration
def test_sigterm_with_a_hung_link_and_nothing_to_write_exits_in_time(
        tmp_path: Path, sim: Simulator, schema: str) -> None:
    """
    Every row written before the link went dark; the writer thread hangs in the key ring's refresh (every
    second).  Closing the store's connection queued behind it once held SIGTERM for ever.
    """
    relay = Relay((PG_HOST, PG_PORT))
    url = f"postgresql://postgres@127.0.0.1:{relay.port}/test?options=-csearch_path%3D{schema}"
    config = gateway_config(tmp_path, {"simulated": subaccount(sim, {"gpt-4.1": "d-gpt41"})}, usage_store=url)
    gw = start_gateway(tmp_path, config)
    try:
        for i in range(5):
            assert gw.post("/v1/chat/completions", {"model": "gpt-4.1", "messages": HI}).status == 200
        assert len(wait_rows(schema, 5, timeout=15)) == 5
        relay.blackhole()
        time.sleep(2.5)
        took, code = sigterm(gw)
    finally:
        gw.daemon.stop()
        relay.close()
    log = gw.log_text()
    assert code in (0, -15) and took < STOP_DEADLINE + 3.0, (took, log[-3000:])
    assert "usage store did not answer within 10 s at stop" in log and "Traceback" not in log, log[-3000:]
    assert len(pg_rows(schema)) == 5


def sigterm(gw: Any) -> tuple[float, int | None]:
    """
    Send SIGTERM; how long the daemon took to exit, and its exit status (None: still running after 30 s).
    """
    assert gw.daemon.alive()
    stopping = time.monotonic()
    gw.daemon.process.send_signal(15)
    try:
        code = gw.daemon.process.wait(STOP_DEADLINE + 20)
    except Exception:
        code = None
    took = time.monotonic() - stopping
    print(f"exited {took:.2f} s after SIGTERM with {code}")
    return took, code


def test_store_connections_carry_statement_timeout_and_keepalives(schema: str) -> None:
    """
    The settings that notice a hung link without a stop are really in force on the store's connection: the
    statement timeout on the server, keepalives and the user timeout on the socket.  A URL's own options
    (a search path here) are kept beside them.
    """
    database = open_database(f"{PG_BASE}?options=-csearch_path%3D{schema}")
    try:
        def settings(conn: Any) -> tuple[str, str, int]:
            timeout = conn.execute("SHOW statement_timeout").fetchone()[0]
            path = conn.execute("SHOW search_path").fetchone()[0]
            return timeout, path, conn.pgconn.socket

        timeout, path, fd = database.run(settings)
        assert timeout == "30s" and path == schema
        s = socket.socket(fileno=fd)
        try:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 30000
        finally:
            s.detach()  # the descriptor is the connection's
    finally:
        database.close()
    # A URL that sets its own statement timeout keeps it.
    database = open_database(f"{PG_BASE}?options=-c%20statement_timeout%3D5000")
    try:
        assert database.run(lambda conn: conn.execute("SHOW statement_timeout").fetchone()[0]) == "5s"
    finally:
        database.close()
