"""Request and response bodies of the collection routes (amounts as decimal strings)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import Field, StringConstraints

from admin_api.billing.schemas import Day, Label, Line, MoneyIn
from admin_api.schemas import ID_PATTERN, Body, Id, Note, Out

Outcome = Literal["collected", "absent", "promised", "refused", "other"]
Kind = Literal["pickup", "renewal"]
Status = Literal["open", "assigned", "visited", "promised", "collected", "cancelled"]
Method = Literal["cash", "cheque", "card"]
Area = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
Mobile = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()\-]{3,24}$")]
PresetCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
AgentPath = Annotated[str, Path(pattern=ID_PATTERN, description="Collection agent id")]
TaskPath = Annotated[str, Path(pattern=r"^ct_[0-9a-f]{24}$", description="Collection task id")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class AgentIn(Body):
    name: Label
    area: Area = Field("", description="The assignment rule gives an area's tasks to its agents")
    mobile: Mobile | None = None
    key_id: Id | None = Field(None, description="The agent's API key (role agent)")
    active: bool = True


class AgentOut(Out):
    agent_id: str
    name: str
    area: str
    mobile: str | None
    key_id: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class AgentList(Out):
    items: list[AgentOut]


class PresetIO(Body):
    code: PresetCode
    label: Label
    outcome: Outcome


class PresetsIn(Body):
    presets: list[PresetIO] = Field(min_length=1, max_length=30)


class PresetsOut(Out):
    presets: list[PresetIO]
    built_in: bool = Field(description="True: the tenant has none of its own")


class TaskIn(Body):
    account_id: Id
    kind: Kind
    area: Area = ""
    address: Line = ""
    note: Note = ""
    amount_expected: MoneyIn | None = Field(None, description="A renewal's price, say")
    due_on: Day | None = None
    agent_id: Id | None = Field(None, description="Default: the area rule, else unassigned")


class PickupIn(Body):
    address: Line = Field("", description="Where to come")
    note: Note = Field("", description="When, and anything the agent should know")


class TaskOut(Out):
    task_id: str
    account_id: str
    kind: Kind
    area: str
    address: str
    note: str
    currency: str
    amount_expected: str | None
    due_on: date | None
    status: Status
    agent_id: str | None
    assigned_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class TaskPage(Out):
    items: list[TaskOut]
    next_cursor: str | None


class AssignIn(Body):
    agent_id: Id | None = Field(description="null: take the task back (unassigned)")


class VisitIn(Body):
    preset: PresetCode
    comment: Note = ""
    promised_on: Day | None = Field(None, description="The promised day (a 'promised' preset)")


class VisitOut(Out):
    visit_id: int
    task: TaskOut


class CollectionIn(Body):
    amount: MoneyIn
    method: Method
    currency: Currency | None = Field(None, description="Default: the account's currency")
    preset: PresetCode | None = Field(None, description="Default: the first 'collected' one")
    reference: Line = Field("", description="A cheque's number, a card slip's...")
    comment: Note = ""


class CollectionOut(Out):
    visit_id: int
    payment_id: str
    receipt_number: str
    amount: str
    currency: str
    method: str
    agent_name: str
    task: TaskOut
    replayed: bool = False


class QuoteOut(Out):
    task_id: str
    currency: str
    owed: str = Field(description="Open invoices")
    price: str = Field(description="The renewal's price (0 for a pickup)")
    available: str = Field(description="The account's prepaid balance or billing credit")
    transferred: str = Field(description="What the account's money pays of the price")
    to_collect: str
    left_over: str = Field(description="The account's money left after the renewal")


class ActionOut(Out):
    visit_id: int
    task_id: str
    account_id: str
    preset: str
    outcome: str
    comment: str
    promised_on: date | None
    payment_id: str | None
    amount: str | None
    method: str | None
    recorded_by: str
    at: datetime


class ActionPage(Out):
    items: list[ActionOut]
    next_cursor: str | None


class MoneyByMethod(Out):
    method: str
    currency: str
    amount: str


class AgentDayOut(Out):
    agent_id: str
    day: date
    assigned: int
    visits: int
    collections: int
    collected: list[MoneyByMethod]


class CollectionsReport(Out):
    start: date
    end: date
    days: list[AgentDayOut]
