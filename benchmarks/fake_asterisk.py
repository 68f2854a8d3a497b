"""Asterisk's side of benchmarks/asterisk.py: the AMI events a PBX sends, a minimal AMI server
that sends them, and the FastAGI client process (``python -m benchmarks.fake_asterisk``).

The client is a process of its own so that offering the load does not run on the event loop
that is measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from pbx_connectors.asterisk.ami_protocol import AmiParser, Message, parse_all
from pbx_connectors.asterisk.commands import Leg
from pbx_connectors.asterisk.events import timestamp_us

TENANT = "bench"
ACCOUNTS = 64  # a0 .. a63, funded by the benchmark; the calls come from them in turn
TRANSCRIPT = (Path(__file__).resolve().parent.parent / "tests" / "fixtures"
              / "asterisk-transcripts" / "10_five_concurrent_calls.txt")


# --- AMI traffic ----------------------------------------------------------------------------

def render(batches: int, tag: str = "") -> tuple[bytes, list[Leg], int]:
    """The transcript's events ``batches`` times over, ids prefixed per batch (and ``tag``),
    timestamps moved to now (the engine refuses answer times far from its clock)."""
    lines = TRANSCRIPT.read_text().splitlines()
    kept = [ln for ln in lines if not ln.startswith((">>>", "Asterisk Call Manager/"))]
    base = [m for m in parse_all("\r\n".join(kept).encode() + b"\r\n\r\n") if m.event]
    first = min(t for m in base if (t := timestamp_us(m)) is not None)
    shift = time.time_ns() // 1000 - first
    chunks: list[bytes] = []
    legs: list[Leg] = []
    for k in range(batches):
        for m in base:
            out = Message()
            for key, value in m.pairs:
                lk = key.lower()
                if lk.endswith(("uniqueid", "linkedid")) and value:
                    value = f"{tag}b{k}-{value}"
                elif lk == "timestamp":
                    us = int(value.replace(".", "")) + shift
                    value = f"{us // 1_000_000}.{us % 1_000_000:06d}"
                out.add(key, value)
            chunks.append(out.encode())
            if m.event == "Newchannel" and "@outbound" in (m.get("Channel") or "") \
                    and (m.get("Channel") or "").endswith(";2"):
                legs.append(Leg(f"{tag}b{k}-{m['Uniqueid']}", TENANT, f"a{len(legs) % ACCOUNTS}",
                                m["Channel"], f"{tag}b{k}-{m['Linkedid']}"))
    return b"".join(chunks), legs, len(base) * batches


async def ami_server(data: bytes, go: asyncio.Event) -> asyncio.Server:
    """Just enough AMI: banner, Login, Ping, an empty CoreShowChannels; then ``data``."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = AmiParser(expect_banner=False)

        async def blast() -> None:
            await go.wait()
            for i in range(0, len(data), 1 << 16):
                writer.write(data[i:i + (1 << 16)])
                await writer.drain()

        sender = asyncio.create_task(blast())
        try:
            while chunk := await reader.read(1 << 16):
                parser.feed(chunk)
                for msg in parser.messages():
                    aid = msg.get("ActionID") or ""
                    action = (msg.get("Action") or "").lower()
                    if action == "coreshowchannels":
                        writer.write(Message.of(Response="Success", ActionID=aid,
                                                EventList="start").encode())
                        writer.write(Message.of(Event="CoreShowChannelsComplete", ActionID=aid,
                                                EventList="Complete", ListItems=0).encode())
                    else:
                        writer.write(Message.of(Response="Success", ActionID=aid).encode())
        finally:
            sender.cancel()
            writer.close()

    return await asyncio.start_server(session, "127.0.0.1", 0)


# --- the FastAGI client process ----------------------------------------------------------------

async def _exchange(port: int, uniqueid: str, account: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write((
            "agi_network: yes\nagi_network_script: authorize\n"
            f"agi_request: agi://127.0.0.1:{port}/authorize\n"
            f"agi_channel: Local/12125550100@outbound-{uniqueid};2\nagi_type: Local\n"
            f"agi_uniqueid: {uniqueid}\nagi_callerid: 15550001\nagi_context: outbound\n"
            f"agi_extension: 12125550100\nagi_accountcode: {account}\n"
            f"agi_arg_1: {uniqueid}-h\n\n").encode())
        status = ""
        while line := await reader.readline():
            if line.startswith(b"SET VARIABLE CHARGING_STATUS"):
                status = line.split(b'"')[1].decode()
            writer.write(b"200 result=1\n")
        return status
    finally:
        writer.close()


async def agi_load(port: int, mode: str, value: float, seconds: float, tag: str
                   ) -> dict[str, float]:
    """``closed``: ``value`` connections back to back; else ``value`` calls/s offered."""
    latencies: list[float] = []
    failures = 0
    n = 0

    async def one(i: int) -> None:
        nonlocal failures
        t0 = time.perf_counter()
        status = await _exchange(port, f"{tag}-{i}", f"a{i % ACCOUNTS}")
        latencies.append((time.perf_counter() - t0) * 1000)
        failures += status != "ALLOWED"

    start = time.perf_counter()
    if mode == "closed":
        deadline = start + seconds

        async def worker() -> None:
            nonlocal n
            while time.perf_counter() < deadline:
                n += 1
                await one(n)

        await asyncio.gather(*(worker() for _ in range(int(value))))
    else:
        tasks = []
        total = int(value * seconds)
        for i in range(total):
            delay = start + i / value - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {"rate": len(latencies) / elapsed, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "failures": failures}


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))] if s else float("nan")


if __name__ == "__main__":
    import uvloop

    port, mode, value, secs, tag = sys.argv[1:6]
    print(json.dumps(uvloop.run(agi_load(int(port), mode, float(value), float(secs), tag))))
