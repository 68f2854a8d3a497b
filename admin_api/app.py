"""The admin API (issue 4): tenants, keys, accounts, rates, money, calls, alerts, audit, ops.

``create_admin_app(engine)`` builds the app on a running engine and registers its background
work (alert feed, SSE hub, key expiry) with ``engine.background``, which ``charging-engine
serve`` runs; pass ``background=False`` to run ``app.state.background.run(stop)`` yourself.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI

from admin_api import (
    audit,
    calls,
    inbound_routes,
    keys_routes,
    notifications_routes,
    self_service_routes,
    sms_gateway_routes,
    tenants,
)
from admin_api.accounts import routes as accounts
from admin_api.alerts import routes as alerts
from admin_api.alerts.hub import AlertHub
from admin_api.background import AdminBackground
from admin_api.billing import (
    accounts_billing_routes,
    auto_topup_routes,
    catalog_routes,
    charges_routes,
    credit_notes_routes,
    dids_routes,
    dunning_routes,
    exports_routes,
    gateways_routes,
    invoices_routes,
    payments_routes,
    plan_change_routes,
    prepaid_routes,
    reports_routes,
    settings_routes,
    webhooks_routes,
)
from admin_api.collections import agents_routes as collection_agents
from admin_api.collections import tasks_routes as collection_tasks
from admin_api.context import AdminContext
from admin_api.domain_errors import install_domain_errors
from admin_api.guard import BodyGuard
from admin_api.money import routes as money
from admin_api.ops import health
from admin_api.ops.metrics import Metrics, RequestTimer
from admin_api.problems import install_admin
from admin_api.rates import deck, pricing
from admin_api.rates import routes as rates
from billing.clock import Clock
from charging_engine.bootstrap import Engine
from charging_engine.web.problems import ProblemAPI

API_VERSION: Final = "1.0.0"
ROUTERS: Final = (
    health.router, keys_routes.router, tenants.router, accounts.router, money.router,
    rates.router, deck.router, pricing.router, calls.router, alerts.router, audit.router,
    catalog_routes.router, dids_routes.router, charges_routes.router, settings_routes.router,
    accounts_billing_routes.router, invoices_routes.router, webhooks_routes.router,
    exports_routes.router, payments_routes.router, reports_routes.router,
    credit_notes_routes.router, dunning_routes.router, gateways_routes.router,
    prepaid_routes.router, auto_topup_routes.router, plan_change_routes.router,
    self_service_routes.router, notifications_routes.router, collection_agents.router,
    collection_tasks.router, inbound_routes.router, sms_gateway_routes.router,
)


class AdminAPI(ProblemAPI):
    """The admin API application (error bodies documented as problem+json)."""


def create_admin_app(
    engine: Engine, *, background: bool = True, clock: Clock | None = None
) -> FastAPI:
    """``clock``: billing's "now" (periods, review windows); default: the engine's clock."""
    assert engine.settings.database_url, "the admin API needs DATABASE_URL"
    metrics = Metrics()
    ctx = AdminContext(engine, metrics, AlertHub(engine.pool, engine.settings.database_url),
                       clock)
    app = AdminAPI(
        title="Charging engine admin API",
        version=API_VERSION,
        description=(
            "Tenants, API keys and roles, accounts, rate plans and CSV decks, prepaid money"
            " operations, call records, live alerts, audit log. Authenticate with"
            " `Authorization: Bearer <key>` (or `X-API-Key`); the key's tenant bounds what it"
            " sees: another tenant's ids answer 404. Amounts are decimal strings. Errors are"
            " RFC 9457 `application/problem+json` with a machine-readable `reason`."
        ),
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None,
    )
    app.state.admin = ctx
    app.state.background = AdminBackground(ctx)
    if background:
        engine.background.append(app.state.background.run)
    metrics.observe_authorizations(engine.service)
    install_admin(app)
    install_domain_errors(app)
    app.add_middleware(BodyGuard)
    app.add_middleware(RequestTimer, metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    return app
