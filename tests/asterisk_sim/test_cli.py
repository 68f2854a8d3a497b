"""The command line: serve AMI, place calls through a FastAGI server, print a summary."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .support import AmiClient, StubAgi

REPO = Path(__file__).resolve().parents[2]


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_connectors.asterisk.simulator", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_places_calls_and_prints_a_table() -> None:
    agi = StubAgi(["SET VARIABLE CHARGING_STATUS ALLOWED", "SET VARIABLE CHARGING_MAXMS 150"])
    port = await agi.start()
    try:
        code, out, err = await run_cli(
            "--agi", f"127.0.0.1:{port}", "--ami-port", "0", "--user", "u", "--secret", "S",
            "--calls", "4", "--concurrency", "2", "--accounts", "a1,a2", "--ring", "0.02",
            "--talk", "1", "--destination", "+442079460000")
    finally:
        await agi.stop()
    assert code == 0, err
    assert out.startswith("AMI listening on 127.0.0.1:")
    rows = [line for line in out.splitlines() if "-a " in line]
    assert len(rows) == 4 and all(" limit " in row and " ALLOWED " in row for row in rows)
    assert "ended by: limit 4" in out
    assert len(agi.envs) == 4
    assert {env["agi_accountcode"] for env in agi.envs} == {"a1", "a2"}
    assert {env["agi_extension"] for env in agi.envs} == {"+442079460000"}


async def test_cli_waits_for_an_ami_client_and_serves_it() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pbx_connectors.asterisk.simulator", "--agi", "none",
        "--ami-port", "0", "--calls", "1", "--ring", "0", "--talk", "0", "--wait-clients", "1",
        "--serve", cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(20):
            first = (await proc.stdout.readline()).decode()
            port = int(first.rsplit(":", 1)[1])
            client = await AmiClient.connect(port)
            await client.login()
            await client.wait_for(lambda ms: any(m.event == "Cdr" for m in ms))
            while "serving AMI" not in (await proc.stdout.readline()).decode():
                pass
            assert (await client.action("Ping")).response == "Success"
            await client.close()
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
    assert proc.returncode == 0


async def test_cli_refuses_bad_arguments() -> None:
    code, _, err = await run_cli("--agi", "nowhere")
    assert code == 2 and "--agi" in err
    code, _, err = await run_cli("--agi", "none", "--ami-port", "0", "--calls", "1",
                                 "--outcomes", "maybe")
    assert code == 2 and "unknown outcome" in err
