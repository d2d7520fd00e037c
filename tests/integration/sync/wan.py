"""A WAN between the agent and the registry that the tests can break.

The registry runs in its own network namespace, joined to the host by a veth pair.
Loss and cuts are nftables rules inside that namespace (its own table, gone with the
namespace); latency comes from a small TCP proxy on the host that holds every chunk
for a while in each direction, keeping order.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_TABLE = "tbx_wan"


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Wan:
    netns: str
    host_ip: str
    ns_ip: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def nft(self, script: str) -> None:
        _run(*self.exec_prefix(), "nft", script)

    def heal(self) -> None:
        self.nft(f"flush chain inet {_TABLE} input")

    def loss(self, port: int, percent: int) -> None:
        """Drop this share of the packets that reach the registry's port."""
        self.heal()
        rule = f"tcp dport {port} numgen random mod 100 < {percent} counter drop"
        self.nft(f"add rule inet {_TABLE} input {rule}")

    def cut(self, port: int) -> None:
        self.heal()
        self.nft(f"add rule inet {_TABLE} input tcp dport {port} counter drop")

    def dropped(self) -> int:
        """Packets the rules dropped so far: proof a fault really happened."""
        out = _run(*self.exec_prefix(), "nft", "list", "chain", "inet", _TABLE, "input")
        total = 0
        for line in out.splitlines():
            if "packets" in line:
                words = line.split()
                total += int(words[words.index("packets") + 1])
        return total


@contextlib.contextmanager
def wan_namespace() -> Iterator[Wan]:
    tag = secrets.token_hex(3)
    netns, host_if, ns_if = f"tbxw{tag}", f"tbxh{tag}", f"tbxn{tag}"
    # A /30 in 10.200.0.0/16 picked at random: parallel runs rarely collide, and a
    # collision fails loudly at `ip addr add`, not silently.
    block = secrets.randbelow(16384) * 4
    a, b = divmod(block, 256)
    net = f"10.{200 + a // 256}.{a % 256}"
    host_ip, ns_ip = f"{net}.{b + 1}", f"{net}.{b + 2}"
    _run("ip", "netns", "add", netns)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", netns)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        ns = ["ip", "netns", "exec", netns]
        _run(*ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _run(*ns, "ip", "link", "set", ns_if, "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        wan = Wan(netns, host_ip, ns_ip)
        wan.nft(f"add table inet {_TABLE}")
        wan.nft(
            f"add chain inet {_TABLE} input {{ type filter hook input priority 0; policy accept; }}"
        )
        yield wan
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


class DelayProxy:
    """127.0.0.1:port → target, every chunk held ``delay_s`` in each direction."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.delay_s = 0.0
        # What the client side sent upstream, byte for byte, while ``record_up`` is set:
        # what a node sends over its WAN link (TLS aside).
        self.record_up = False
        self.upstream = bytearray()
        self.connections = 0  # opened while ``record_up`` is set
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def reset_connections(self) -> None:
        """Abort every connection open through the proxy (a link that drops), from
        any thread; new connections go through as before."""

        async def reset() -> None:
            for writer in list(self._writers):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(reset(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled at shutdown: end quietly, asyncio would log the cancellation.
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(reader, writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.record_up:
            self.connections += 1
        try:
            up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
        except (OSError, TimeoutError):
            writer.close()
            return
        self._writers.add(up_w)
        await asyncio.gather(
            self._pipe(reader, up_w, upstream=True),
            self._pipe(up_r, writer),
            return_exceptions=True,
        )
        for w in (writer, up_w):
            w.close()
            self._writers.discard(w)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool = False
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                if upstream and self.record_up:
                    self.upstream += chunk
                await queue.put((loop.time() + self.delay_s, chunk))
                if not chunk:
                    break
            await sender
        except (OSError, ConnectionError):
            sender.cancel()
            writer.close()
