"""The load tenant: one rate plan, N funded accounts and a few without money (for denials)."""

from __future__ import annotations

from charging_engine.bootstrap import open_engine
from charging_engine.config import Settings
from charging_engine.loader import TenantData, load_tenant

TENANT = "load"
KEY = "loadtest-key"  # the PBX key of the realtime scenario's Bearer header
RATES = """prefix,description,price_per_minute,first_increment,next_increment
1,USA,0.0100,6,6
44,UK,0.0200,60,1
49,Germany,0.0300,30,6
33,France,0.0250,1,1
"""


def accounts_csv(funded: int, poor: int) -> str:
    """``acc<i>`` with a balance no run can spend, ``poor<i>`` with none: the locust users'
    account ids, and the account codes of the fastagi scenario as they are."""
    rows = ["account_id,kind,credit_limit,opening_balance,status"]
    rows += [f"acc{i},prepaid,0,1000000.00,active" for i in range(funded)]
    rows += [f"poor{i},prepaid,0,0,active" for i in range(poor)]
    return "\n".join(rows) + "\n"


async def seed(settings: Settings, funded: int, poor: int) -> None:
    """Load the tenant the way an operator would (the loader), before the engine starts."""
    async with open_engine(settings) as engine:
        await load_tenant(engine, TenantData.from_text(
            tenant_id=TENANT, name="Load test", currency="USD", timezone="UTC", plan_id="load",
            rates=RATES, accounts=accounts_csv(funded, poor), pbx_key=KEY,
        ))
