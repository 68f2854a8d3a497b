"""Call records: filters, totals over the whole filter, stable pages, streamed CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from tests.admin.conftest import Api, World, problem

CALLS = "/v1/tenants/acme/calls"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


async def real_calls(api: Api) -> None:
    """Three calls through the charging service, settled into Postgres."""
    service = api.engine.service
    for call_id, account, dst, seconds in (("r-1", "a1", "+14155550100", 60),
                                           ("r-2", "a1", "+442079460000", 90),
                                           ("r-3", "a2", "+14155550101", 0)):
        assert (await service.authorize("acme", account, call_id, dst)).allowed
        await service.end("acme", account, call_id, billable_seconds=seconds)
    await api.settle()


async def bulk_calls(api: Api, n: int) -> None:
    """``n`` older CDRs written straight into the calls table (as settlement would)."""
    rows = [
        ("acme", f"b-{i:06d}", "a1" if i % 2 else "a2", f"4420{i:07d}" if i % 3 else "1415555",
         "44" if i % 3 else "1", "std", T0 + timedelta(seconds=i), None,
         T0 + timedelta(seconds=i + 30), 30, 60 if i % 3 else 30, 1200 if i % 3 else 300,
         "answered" if i % 5 else "not_answered", "commit")
        for i in range(n)
    ]
    await api.engine.pool.copy_records_to_table("calls", records=rows, columns=(
        "tenant_id", "call_id", "account_id", "destination", "rate_prefix", "plan_id",
        "started_at", "answered_at", "ended_at", "duration", "billed_seconds", "cost",
        "disposition", "settled_by",
    ))


async def test_filters_and_totals(api: Api, world: World) -> None:
    await real_calls(api)
    ops = world.a.clients["ops"]
    page = (await ops.get(CALLS)).json()
    assert [c["call_id"] for c in page["items"]] == ["r-3", "r-2", "r-1"]
    r2 = page["items"][1]
    assert (r2["destination"], r2["rate_prefix"], r2["billed_seconds"], r2["cost"]) == (
        "442079460000", "44", 90, "0.18")
    assert page["totals"] == [{"currency": "USD", "calls": 3, "cost": "0.24",
                               "billed_seconds": 150, "duration": 150}]
    only = (await ops.get(f"{CALLS}?account=a1&destination=44")).json()
    assert [c["call_id"] for c in only["items"]] == ["r-2"]
    assert only["totals"][0]["calls"] == 1
    unanswered = (await ops.get(f"{CALLS}?disposition=not_answered")).json()["items"]
    assert [c["call_id"] for c in unanswered] == ["r-3"]
    problem(await world.a.clients["agent"].get(CALLS), 403, "forbidden")
    problem(await ops.get(f"{CALLS}?destination=+44"), 422)


async def test_pages_date_ranges_and_streamed_export(api: Api, world: World) -> None:
    await bulk_calls(api, 12_000)
    await real_calls(api)
    ops = world.a.clients["ops"]
    start, end = T0 + timedelta(seconds=1000), T0 + timedelta(seconds=2000)
    rng = f"from={start.isoformat()}&to={end.isoformat()}".replace("+", "%2B")
    seen: list[str] = []
    cursor = None
    while True:
        url = f"{CALLS}?{rng}&limit=300" + (f"&cursor={cursor}" if cursor else "")
        page = (await ops.get(url)).json()
        seen += [c["call_id"] for c in page["items"]]
        assert page["totals"][0]["calls"] == 1000
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"b-{i:06d}" for i in range(1999, 999, -1)]  # newest first, no repeats

    r = await ops.get(f"{CALLS}/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 12_003
    assert rows[0]["call_id"] == "r-3"  # the real calls are the newest
    b = next(x for x in rows if x["call_id"] == "b-000001")
    assert (b["cost"], b["currency"], b["duration"], b["answered_at"]) == (
        "0.0012", "USD", "30", "")
    assert sum(1 for x in rows if x["account_id"] == "a2") == 6000 + 1
    filtered = await ops.get(f"{CALLS}/export?{rng}&account=a1")
    assert len(list(csv.DictReader(io.StringIO(filtered.text)))) == 500
