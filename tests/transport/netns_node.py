"""One node of the network-namespace test, run inside its namespace by ``ip netns exec``.

It opens a UDP transport from the JSON settings in argv, then obeys one JSON command per line
on stdin and answers one JSON line on stdout; the test drives it. It exits on ``quit``, at
end of input, or after ``--lifetime-s`` whatever happens, so it can never outlive the test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from paxoskv.transport import TransportSettings, UdpSettings, UdpTransport


async def collect(transport: UdpTransport, count: int, timeout_s: float) -> list[list[str]]:
    """Up to ``count`` deliveries, waiting at most ``timeout_s`` in all."""
    got: list[list[str]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and (left_s := deadline - time.monotonic()) > 0:
        try:
            sender, payload = await asyncio.wait_for(transport.receive(), left_s)
        except TimeoutError:
            break
        got.append([sender, payload.decode()])
    return got


async def obey(transport: UdpTransport, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    if op == "broadcast":
        await transport.broadcast(command["payload"].encode())
    elif op == "send":
        await transport.send(command["to"], command["payload"].encode())
    elif op == "collect":
        return {"received": await collect(transport, command["count"], command["timeout_s"])}
    elif op == "peers":
        return {"peers": {k: list(v) for k, v in transport.peers.items()}}
    elif op == "stats":
        return {"stats": transport.stats.as_dict()}
    return {"ok": True}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("node_id")
    parser.add_argument("settings_json")
    parser.add_argument("--lifetime-s", type=float, default=60.0)
    args = parser.parse_args()
    raw = json.loads(args.settings_json)
    udp = UdpSettings(**{**raw.pop("udp"), "peers": tuple(raw.pop("peers", ()))})
    secret = raw.pop("secret", None)
    settings = TransportSettings(udp=udp, secret=secret.encode() if secret else None, **raw)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with await UdpTransport.open(args.node_id, settings) as transport:
        print(json.dumps({"ready": list(transport.local_address)}), flush=True)
        async with asyncio.timeout(args.lifetime_s):
            while line := await reader.readline():
                command = json.loads(line)
                if command["op"] == "quit":
                    break
                print(json.dumps(await obey(transport, command)), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main())
