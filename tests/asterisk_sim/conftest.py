"""Simulators on free ports and logged-in AMI clients, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pbx_connectors.asterisk.simulator import Simulator, SimulatorConfig

from .support import AmiClient

MakeSim = Callable[..., Awaitable[Simulator]]
Connect = Callable[..., Awaitable[AmiClient]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    """``await make_sim(agi=None, ...)``: a started simulator with those config fields."""
    sims: list[Simulator] = []

    async def make(**config: Any) -> Simulator:
        sim = await Simulator(SimulatorConfig(**config)).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        await sim.close()


@pytest.fixture
async def sim(make_sim: MakeSim) -> Simulator:
    """No FastAGI step (the ``outbound-noagi`` dialplan of transcript 03), no CEL."""
    return await make_sim(agi=None, cel=False)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port, events="on")``: an AMI client, logged in."""
    clients: list[AmiClient] = []

    async def open_client(port: int, events: str = "on", login: bool = True) -> AmiClient:
        client = await AmiClient.connect(port)
        clients.append(client)
        if login:
            reply = await client.login(events=events)
            assert reply.response == "Success", reply
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest.fixture
async def ami(sim: Simulator, connect: Connect) -> AmiClient:
    return await connect(sim.ami_port)
