"""The engine's account record and Redis balance as the API's response models."""

from __future__ import annotations

from admin_api.accounts.schemas import AccountOut, AutoTopupOut, BalanceOut
from charging_engine.accounts.record import AccountRow
from charging_engine.balance.store import AccountState
from charging_engine.money import format_amount


def balance_out(state: AccountState | None, currency: str) -> BalanceOut | None:
    if state is None:
        return None
    return BalanceOut(
        currency=currency, balance=format_amount(state.balance, currency),
        credit_limit=format_amount(state.credit_limit, currency),
        reserved=format_amount(state.reserved, currency),
        available=format_amount(state.available, currency), status=state.status,
    )


def auto_topup_out(row: AccountRow) -> AutoTopupOut:
    cur = row.currency
    return AutoTopupOut(
        enabled=row.auto_topup_enabled,
        threshold=None if row.auto_topup_threshold is None
        else format_amount(row.auto_topup_threshold, cur),
        amount=None if row.auto_topup_amount is None
        else format_amount(row.auto_topup_amount, cur),
    )


def account_out(row: AccountRow, state: AccountState | None) -> AccountOut:
    cur = row.currency
    return AccountOut(
        tenant_id=row.tenant_id, account_id=row.account_id, kind=row.kind.value,
        currency=cur, status=row.status.value,
        credit_limit=format_amount(row.credit_limit, cur),
        min_balance=format_amount(row.min_balance, cur), rate_plan_id=row.rate_plan_id,
        name=row.name, primary_mobile=row.primary_mobile, alternate_mobile=row.alternate_mobile,
        email=row.email,
        low_balance_thresholds=[format_amount(t, cur) for t in row.low_balance_thresholds],
        low_balance_hysteresis=format_amount(row.low_balance_hysteresis, cur),
        auto_topup=auto_topup_out(row),
        created_at=row.created_at, updated_at=row.updated_at, closed_at=row.closed_at,
        balance=balance_out(state, cur),
    )
