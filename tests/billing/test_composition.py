"""Invoice composition: usage lines, fees, discounts, minimum spend, taxes and totals, figure by
figure against an independent Fraction model, in both rounding modes; the invariants; credit
notes as the exact negation; validation."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.composition import (
    Charge,
    ComposedInvoice,
    InvoiceInputError,
    InvoiceInputs,
    LineKind,
    UsageGroup,
    compose,
    usage_charge,
)
from billing.discounts import Discount, DiscountKind, DiscountScope
from billing.taxes import TaxLabel, TaxRounding
from tests.billing.test_minor_units import model_allocate, model_half_up
from tests.billing.test_taxes import (
    label_sets,
    model_invoice,
    model_line,
    pct,
    per_unit_of_net,
)

fast = settings(max_examples=200, deadline=None)
MODES = list(TaxRounding)
EXPONENT = {"JPY": 0, "USD": 2, "KWD": 3}
CHARGE_KINDS = [k for k in LineKind if k is not LineKind.DISCOUNT]
SCOPE_KINDS = {
    DiscountScope.USAGE: {"usage", "late_usage"},
    DiscountScope.RECURRING: {"recurring", "did"},
    DiscountScope.INVOICE: {k.value for k in LineKind},
}


# --- the model ------------------------------------------------------------------------------------


@dataclass
class Item:
    """A test-side charge: a usage group (amount in micros) or a charge in minor units."""

    charge: Charge | None = None
    group: UsageGroup | None = None


@dataclass
class MLine:
    kind: str
    description: str
    amount: int
    codes: tuple[str, ...]
    quantity: Decimal = Decimal(1)
    unit: str = ""
    calls: int = 0
    seconds: int = 0
    ref: str | None = None


def model_usage(g: UsageGroup, currency: str, codes: tuple[str, ...]) -> MLine:
    amount = model_half_up(Fraction(g.amount_micros, 10 ** (6 - EXPONENT[currency])))
    minutes = Decimal(model_half_up(Fraction(g.seconds, 60) * 100)) / 100
    desc = (f"Late usage: calls to {g.description} from earlier periods" if g.late
            else f"Calls to {g.description}")
    kind = "late_usage" if g.late else "usage"
    return MLine(kind, desc, amount, codes, minutes, "min", g.calls, g.seconds)


def model_taken(d: Discount, whole: int) -> int:
    if d.kind is DiscountKind.PERCENT:
        return model_half_up(Fraction(str(d.value)) / 100 * whole)
    return max(-int(d.value), min(int(d.value), whole))


def model_discount(d: Discount, scope_lines: list[MLine]) -> list[MLine]:
    groups: dict[tuple[str, ...], int] = {}
    for line in scope_lines:
        groups[line.codes] = groups.get(line.codes, 0) + line.amount
    whole = sum(groups.values())
    if whole == 0:
        return []
    taken = model_taken(d, whole)
    out = []
    parts = model_allocate([Fraction(taken * left, whole) for left in groups.values()])
    for codes, part in zip(groups, parts, strict=True):
        if part:
            out.append(MLine("discount", d.name, -part, codes, ref=d.code))
    return out


def model_compose(inputs: InvoiceInputs, items: list[Item]) -> dict[str, object]:
    labels = {x.code: x for x in inputs.taxes}

    def key(codes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(codes, key=lambda c: (labels[c].order, c)))

    charges = []
    for item in items:
        if item.group is not None:
            assert item.charge is not None  # the test passes the codes on the charge
            charges.append(model_usage(item.group, inputs.currency, key(item.charge.tax_codes)))
        else:
            c = item.charge
            assert c is not None
            charges.append(MLine(c.kind.value, c.description, c.amount, key(c.tax_codes),
                                 c.quantity, c.unit, c.calls, c.seconds, c.ref))
    scoped: list[MLine] = []
    by_scope: dict[DiscountScope, list[MLine]] = {s: [] for s in DiscountScope}
    for d in inputs.discounts:
        if d.scope is not DiscountScope.INVOICE:
            mine = [c for c in charges if c.kind in SCOPE_KINDS[d.scope]] + by_scope[d.scope]
            made = model_discount(d, mine)
            by_scope[d.scope] += made
            scoped += made
    usage = sum(c.amount for c in charges if c.kind in SCOPE_KINDS[DiscountScope.USAGE])
    usage += sum(x.amount for x in by_scope[DiscountScope.USAGE])
    if inputs.minimum_spend and usage < inputs.minimum_spend:
        charges.append(MLine("minimum_spend", "Minimum spend adjustment",
                             inputs.minimum_spend - usage, key(inputs.minimum_spend_tax_codes)))
    lines = charges + scoped
    for d in inputs.discounts:
        if d.scope is DiscountScope.INVOICE:
            lines += model_discount(d, lines)
    taxed_in = [(x.amount, [labels[c] for c in x.codes]) for x in lines]
    if inputs.rounding is TaxRounding.PER_LINE:
        taxed = [model_line(a, ls) for a, ls in taxed_in]
    else:
        taxed = model_invoice(taxed_in)[0]
    out_lines = [
        (i, x.kind, x.description, x.quantity, x.unit, x.amount, net, taxes, x.codes, x.calls,
         x.seconds, x.ref)
        for i, (x, (net, taxes)) in enumerate(zip(lines, taxed, strict=True), start=1)
    ]
    totals: dict[str, list[int]] = {}
    for _, taxes in taxed:
        for code, base, amount in taxes:
            totals.setdefault(code, [0, 0])
            totals[code][0] += base
            totals[code][1] += amount
    order = sorted(totals, key=lambda c: (labels[c].order, c))
    subtotal = sum(net for net, _ in taxed)
    tax_total = sum(a for _, a in totals.values())
    total = subtotal + tax_total
    credit = min(inputs.credit_available, max(total, 0))
    return {
        "lines": out_lines,
        "tax_totals": [(c, labels[c].name, labels[c].rate, labels[c].inclusive, *totals[c])
                       for c in order],
        "figures": (subtotal, tax_total, total, credit, total - credit),
    }


def observed(inv: ComposedInvoice) -> dict[str, object]:
    return {
        "lines": [
            (x.position, x.kind.value, x.description, x.quantity, x.unit, x.amount, x.net,
             [(t.code, t.base, t.amount) for t in x.taxes], x.tax_codes, x.calls, x.seconds,
             x.ref)
            for x in inv.lines
        ],
        "tax_totals": [(t.code, t.name, t.rate, t.inclusive, t.base, t.amount)
                       for t in inv.tax_totals],
        "figures": (inv.subtotal, inv.tax_total, inv.total, inv.credit_applied, inv.amount_due),
    }


# --- strategies -----------------------------------------------------------------------------------

positive = st.integers(0, 10**6)
amounts = positive | st.integers(-(10**4), 10**4)


@st.composite
def cases(
    draw: st.DrawFn, *, minimum: bool = True, credit: bool = True, signed: bool = True
) -> tuple[InvoiceInputs, list[Item]]:
    currency = draw(st.sampled_from(sorted(EXPONENT)))
    labels = draw(label_sets())
    codes = st.lists(st.sampled_from([x.code for x in labels]), unique=True, max_size=3).map(
        tuple
    ) if labels else st.just(())
    items: list[Item] = []
    for n in range(draw(st.integers(0, 7))):
        tax_codes = draw(codes)
        if draw(st.booleans()):
            micros = draw(st.integers(0, 10**9) | st.integers(-(10**7), 10**7) if signed
                          else st.integers(0, 10**9))
            g = UsageGroup(f"dest {n}", draw(st.integers(0, 50)), draw(st.integers(0, 10**5)),
                           micros, draw(st.booleans()))
            items.append(Item(usage_charge(g, currency, tax_codes), g))
        else:
            amount = draw(amounts if signed else positive)
            line_kind = draw(st.sampled_from(CHARGE_KINDS))
            items.append(Item(Charge(line_kind, f"charge {n}", amount, tax_codes, ref=f"r{n}")))
    discounts = []
    for n in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(list(DiscountKind)))
        value: Decimal | int = (Decimal(draw(st.integers(0, 10_000))).scaleb(-2)
                                if kind is DiscountKind.PERCENT else draw(st.integers(0, 10**5)))
        discounts.append(Discount(f"d{n}", f"discount {n}", kind, value,
                                  draw(st.sampled_from(list(DiscountScope)))))
    inputs = InvoiceInputs(
        currency=currency,
        charges=tuple(i.charge for i in items if i.charge is not None),
        discounts=tuple(discounts),
        taxes=tuple(labels),
        rounding=draw(st.sampled_from(MODES)),
        credit_available=draw(st.integers(0, 10**6)) if credit else 0,
        minimum_spend=draw(st.just(0) | st.integers(1, 10**6)) if minimum else 0,
        minimum_spend_tax_codes=draw(codes),
    )
    return inputs, items


def negated(inputs: InvoiceInputs) -> InvoiceInputs:
    return replace(inputs, charges=tuple(replace(c, amount=-c.amount) for c in inputs.charges))


def check_invariants(inv: ComposedInvoice, inputs: InvoiceInputs) -> None:
    assert inv.subtotal == sum(x.net for x in inv.lines)
    assert inv.tax_total == sum(t.amount for t in inv.tax_totals)
    assert inv.total == inv.subtotal + inv.tax_total == sum(x.gross for x in inv.lines)
    assert inv.credit_applied == min(inputs.credit_available, max(inv.total, 0))
    assert inv.amount_due == inv.total - inv.credit_applied
    assert [x.position for x in inv.lines] == list(range(1, len(inv.lines) + 1))
    labels = {x.code: x for x in inputs.taxes}
    exact: dict[str, Fraction] = {}
    for line in inv.lines:
        ls = [labels[c] for c in line.tax_codes]
        on_one, gross_of_one = per_unit_of_net(ls)
        assert line.net + sum(t.amount for t in line.taxes if labels[t.code].inclusive) == (
            line.amount
        )
        for t in line.taxes:
            x = labels[t.code]
            q = on_one[x.code] * line.amount / gross_of_one if x.inclusive else pct(x) * t.base
            exact[x.code] = exact.get(x.code, Fraction(0)) + q
            if inputs.rounding is TaxRounding.PER_LINE:
                assert t.amount == model_half_up(q)
    for total in inv.tax_totals:
        mine = [t for line in inv.lines for t in line.taxes if t.code == total.code]
        assert total.amount == sum(t.amount for t in mine)
        if inputs.rounding is TaxRounding.PER_INVOICE:
            assert total.amount == model_half_up(exact[total.code])


# --- properties -----------------------------------------------------------------------------------


@fast
@given(cases())
def test_compose_matches_the_model_figure_by_figure(case: tuple[InvoiceInputs, list[Item]]) -> None:
    inputs, items = case
    assert observed(compose(inputs)) == model_compose(inputs, items)


@fast
@given(cases())
def test_invariants_hold_exactly_in_both_rounding_modes(
    case: tuple[InvoiceInputs, list[Item]],
) -> None:
    for mode in MODES:
        inputs = replace(case[0], rounding=mode)
        check_invariants(compose(inputs), inputs)


@fast
@given(cases(minimum=False, credit=False))
def test_a_credit_note_is_the_exact_negation_in_both_modes(
    case: tuple[InvoiceInputs, list[Item]],
) -> None:
    for mode in MODES:
        inputs = replace(case[0], rounding=mode)
        inv, note = compose(inputs), compose(negated(inputs))
        assert len(note.lines) == len(inv.lines)
        for a, b in zip(inv.lines, note.lines, strict=True):
            assert (b.position, b.kind, b.description, b.tax_codes, b.ref, b.quantity) == (
                a.position, a.kind, a.description, a.tax_codes, a.ref, a.quantity
            )
            assert (b.amount, b.net) == (-a.amount, -a.net)
            assert [(t.code, t.base, t.amount) for t in b.taxes] == [
                (t.code, -t.base, -t.amount) for t in a.taxes
            ]
        assert [(t.code, t.base, t.amount) for t in note.tax_totals] == [
            (t.code, -t.base, -t.amount) for t in inv.tax_totals
        ]
        assert (note.subtotal, note.tax_total, note.total) == (
            -inv.subtotal, -inv.tax_total, -inv.total
        )
        assert note.credit_applied == inv.credit_applied == 0
        assert note.amount_due == -inv.amount_due


@fast
@given(cases(credit=False))
def test_reversing_an_invoice_with_its_minimum_spend_line_negates_it(
    case: tuple[InvoiceInputs, list[Item]],
) -> None:
    inputs = case[0]
    inv = compose(inputs)
    # the computed line follows the charge lines (charges may be MINIMUM_SPEND lines too)
    spend = [x for x in inv.lines[len(inputs.charges):] if x.kind is LineKind.MINIMUM_SPEND]
    reversal = negated(replace(inputs, minimum_spend=0))
    if spend:
        ms = Charge(LineKind.MINIMUM_SPEND, spend[0].description, -spend[0].amount,
                    inputs.minimum_spend_tax_codes)
        reversal = replace(reversal, charges=(*reversal.charges, ms))
    note = compose(reversal)
    assert [(x.kind, x.amount, x.net, x.tax_amount) for x in note.lines] == [
        (x.kind, -x.amount, -x.net, -x.tax_amount) for x in inv.lines
    ]
    assert (note.subtotal, note.tax_total, note.total) == (-inv.subtotal, -inv.tax_total,
                                                           -inv.total)


@fast
@given(cases(signed=False))
def test_no_scope_is_discounted_below_zero(case: tuple[InvoiceInputs, list[Item]]) -> None:
    inputs = case[0]
    inv = compose(inputs)
    scope_of = {d.code: d.scope for d in inputs.discounts}
    for scope in (DiscountScope.USAGE, DiscountScope.RECURRING):
        charged = sum(x.amount for x in inv.lines if x.kind.value in SCOPE_KINDS[scope])
        taken = sum(x.amount for x in inv.lines
                    if x.kind is LineKind.DISCOUNT and scope_of[str(x.ref)] is scope)
        assert taken <= 0 <= charged + taken
    assert sum(x.amount for x in inv.lines) >= 0
    assert all(x.amount <= 0 for x in inv.lines if x.kind is LineKind.DISCOUNT)
    if inputs.minimum_spend:  # usage net of usage discounts, topped up to the minimum
        usage_discount = {c for c, scope in scope_of.items() if scope is DiscountScope.USAGE}
        usage = sum(x.amount for x in inv.lines
                    if x.kind.value in SCOPE_KINDS[DiscountScope.USAGE]
                    or x.kind is LineKind.MINIMUM_SPEND
                    or (x.kind is LineKind.DISCOUNT and x.ref in usage_discount))
        assert usage >= inputs.minimum_spend


@fast
@given(st.integers(0, 10**7), st.integers(-(10**12), 10**12), st.booleans(),
       st.sampled_from(sorted(EXPONENT)))
def test_usage_charge_rounds_micros_once_and_minutes_half_up(
    seconds: int, micros: int, late: bool, currency: str
) -> None:
    g = UsageGroup("Spain mobile", 3, seconds, micros, late)
    c = usage_charge(g, currency, ("VAT",))
    m = model_usage(g, currency, ("VAT",))
    assert (c.kind.value, c.description, c.amount, c.quantity, c.unit, c.calls, c.seconds) == (
        m.kind, m.description, m.amount, m.quantity, m.unit, m.calls, m.seconds
    )
    assert c.tax_codes == ("VAT",) and c.quantity.as_tuple().exponent == -2


# --- examples -------------------------------------------------------------------------------------

VAT = TaxLabel("VAT", "VAT 20%", Decimal(20), inclusive=False)


def test_usage_charge_examples() -> None:
    c = usage_charge(UsageGroup("UK mobile", 2, 125, 12_345_000), "USD", ("VAT",))
    assert (c.kind, c.description, c.amount, c.quantity, c.unit) == (
        LineKind.USAGE, "Calls to UK mobile", 1235, Decimal("2.08"), "min"  # 1234.5 -> 1235
    )
    late = usage_charge(UsageGroup("UK mobile", 1, 90, 500_000, late=True), "JPY")
    assert (late.kind, late.description, late.amount, late.quantity) == (
        LineKind.LATE_USAGE, "Late usage: calls to UK mobile from earlier periods", 1,
        Decimal("1.50"),
    )
    assert usage_charge(UsageGroup("x", 1, 1, 1), "KWD").quantity == Decimal("0.02")  # 1/60
    assert usage_charge(UsageGroup("x", 1, 30, -500), "KWD").amount == -1


def test_a_worked_invoice_in_both_modes() -> None:
    inputs = InvoiceInputs(
        currency="USD",
        charges=(
            usage_charge(UsageGroup("UK", 10, 600, 12_345_000), "USD", ("VAT",)),
            Charge(LineKind.RECURRING, "Plan", 1000, ("VAT",)),
            Charge(LineKind.ONE_TIME, "Setup", 500, ref="otc-1"),
        ),
        discounts=(
            Discount("INV300", "3.00 off", DiscountKind.FIXED, 300, DiscountScope.INVOICE),
            Discount("U10", "10% off calls", DiscountKind.PERCENT, Decimal(10),
                     DiscountScope.USAGE),
        ),
        taxes=(VAT,),
        rounding=TaxRounding.PER_LINE,
        credit_available=1000,
    )
    inv = compose(inputs)
    # 10% of 1235 = 123.5 -> 124; then 300 over VAT 2111 / untaxed 500: 242.55 -> 243 and 57
    assert [(x.position, x.kind, x.amount, x.net, x.tax_amount, x.tax_codes, x.ref)
            for x in inv.lines] == [
        (1, LineKind.USAGE, 1235, 1235, 247, ("VAT",), None),
        (2, LineKind.RECURRING, 1000, 1000, 200, ("VAT",), None),
        (3, LineKind.ONE_TIME, 500, 500, 0, (), "otc-1"),
        (4, LineKind.DISCOUNT, -124, -124, -25, ("VAT",), "U10"),
        (5, LineKind.DISCOUNT, -243, -243, -49, ("VAT",), "INV300"),
        (6, LineKind.DISCOUNT, -57, -57, 0, (), "INV300"),
    ]
    assert [(t.code, t.base, t.amount) for t in inv.tax_totals] == [("VAT", 1868, 373)]
    assert (inv.subtotal, inv.tax_total, inv.total, inv.credit_applied, inv.amount_due) == (
        2311, 373, 2684, 1000, 1684
    )
    inv = compose(replace(inputs, rounding=TaxRounding.PER_INVOICE))
    assert [x.tax_amount for x in inv.lines] == [247, 200, 0, -25, -48, 0]  # 373.6 allocated
    assert [(t.code, t.base, t.amount) for t in inv.tax_totals] == [("VAT", 1868, 374)]
    assert (inv.subtotal, inv.tax_total, inv.total) == (2311, 374, 2685)


def test_empty_inputs_give_an_empty_invoice() -> None:
    for mode in MODES:
        inv = compose(InvoiceInputs("EUR", rounding=mode, credit_available=500))
        assert inv == ComposedInvoice("EUR")
        assert (inv.lines, inv.tax_totals, inv.total, inv.amount_due) == ((), (), 0, 0)


@pytest.mark.parametrize(
    ("usage", "minimum", "expected"),
    [(300, 1000, 700), (1000, 1000, None), (1500, 1000, None), (300, 0, None),
     (-200, 1000, 1200), (0, 1, 1)],
)
def test_minimum_spend_tops_usage_up(usage: int, minimum: int, expected: int | None) -> None:
    inputs = InvoiceInputs(
        "USD", (Charge(LineKind.USAGE, "Calls", usage), Charge(LineKind.RECURRING, "Plan", 5000)),
        taxes=(VAT,), minimum_spend=minimum, minimum_spend_tax_codes=("VAT",),
    )
    spend = [x for x in compose(inputs).lines if x.kind is LineKind.MINIMUM_SPEND]
    assert [(x.amount, x.tax_amount, x.position) for x in spend] == (
        [] if expected is None else [(expected, model_half_up(Fraction(expected, 5)), 3)]
    )


def test_minimum_spend_counts_usage_net_of_usage_discounts_only() -> None:
    inputs = InvoiceInputs(
        "USD", (Charge(LineKind.USAGE, "Calls", 1000),),
        discounts=(
            Discount("U", "u", DiscountKind.FIXED, 100, DiscountScope.USAGE),
            Discount("I", "i", DiscountKind.FIXED, 100, DiscountScope.INVOICE),
        ),
        minimum_spend=1000,
    )
    inv = compose(inputs)
    assert [(x.kind, x.amount, x.ref) for x in inv.lines] == [
        (LineKind.USAGE, 1000, None), (LineKind.MINIMUM_SPEND, 100, None),
        (LineKind.DISCOUNT, -100, "U"), (LineKind.DISCOUNT, -100, "I"),
    ]
    assert inv.total == 900


def test_discount_lines_carry_the_codes_of_what_they_discount() -> None:
    zero = TaxLabel("ZERO", "Zero rated", Decimal(0), inclusive=False)
    inputs = InvoiceInputs(
        "USD",
        (Charge(LineKind.DID, "DID +44 20", 300, ("VAT",), ref="+4420"),
         Charge(LineKind.RECURRING, "Plan", 100, ("ZERO",)),
         Charge(LineKind.USAGE, "Calls", 999, ("VAT",))),
        discounts=(Discount("R", "Half off fees", DiscountKind.PERCENT, Decimal(50),
                            DiscountScope.RECURRING),),
        taxes=(VAT, zero),
    )
    inv = compose(inputs)
    assert [(x.amount, x.tax_codes, x.tax_amount) for x in inv.lines[3:]] == [
        (-150, ("VAT",), -30), (-50, ("ZERO",), 0),
    ]


def test_credit_is_applied_up_to_the_total() -> None:
    def due(amount: int, credit: int) -> tuple[int, int]:
        inv = compose(InvoiceInputs("USD", (Charge(LineKind.ONE_TIME, "x", amount),),
                                    credit_available=credit))
        return inv.credit_applied, inv.amount_due

    assert due(1000, 300) == (300, 700)
    assert due(1000, 5000) == (1000, 0)
    assert due(-1000, 5000) == (0, -1000)  # a credit invoice takes no credit


def test_inclusive_taxes_keep_the_amount_charged() -> None:
    vat = TaxLabel("VAT", "VAT", Decimal(20), inclusive=True)
    inputs = InvoiceInputs("USD", (Charge(LineKind.RECURRING, "Plan", 1000, ("VAT",)),) * 3,
                           discounts=(Discount("F", "f", DiscountKind.FIXED, 120,
                                               DiscountScope.INVOICE),), taxes=(vat,))
    for mode in MODES:
        inv = compose(replace(inputs, rounding=mode))
        assert inv.total == 2880  # inclusive: the customer pays what was charged
        # per line: 166.67 -> 167 three times, less 20 in the discount; per invoice: 2880 / 6
        assert inv.tax_totals[0].amount == (480 if mode is TaxRounding.PER_INVOICE else 481)


# --- validation -----------------------------------------------------------------------------------


def charge(**kw: object) -> Charge:
    base: dict[str, object] = {"kind": LineKind.ONE_TIME, "description": "x", "amount": 100}
    return Charge(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: InvoiceInputs("usd"), "3 uppercase letters"),
        (lambda: InvoiceInputs("XAU"), "no minor unit"),
        (lambda: InvoiceInputs("USD", credit_available=-1), "credit_available"),
        (lambda: InvoiceInputs("USD", minimum_spend=-1), "minimum_spend"),
        (lambda: InvoiceInputs("USD", credit_available=1.5),  # type: ignore[arg-type]
         "credit_available"),
        (lambda: InvoiceInputs("USD", (charge(tax_codes=("GST",)),)), "unknown tax code 'GST'"),
        (lambda: InvoiceInputs("USD", (charge(tax_codes=("VAT", "VAT")),), taxes=(VAT,)),
         "twice"),
        (lambda: InvoiceInputs("USD", taxes=(VAT, VAT)), "defined twice"),
        (lambda: InvoiceInputs("USD", minimum_spend=1, minimum_spend_tax_codes=("X",)),
         "minimum spend: unknown tax code"),
        (lambda: InvoiceInputs(
            "USD", discounts=(Discount("D", "d", DiscountKind.FIXED, 1, DiscountScope.USAGE),) * 2),
         "given twice"),
        (lambda: InvoiceInputs("USD", rounding="per_month"), "rounding"),  # type: ignore[arg-type]
    ],
)
def test_bad_inputs_are_refused_with_a_clear_error(make: object, message: str) -> None:
    with pytest.raises(InvoiceInputError, match=message):
        compose(make())  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"kind": LineKind.DISCOUNT}, "computed from Discounts"),
        ({"kind": "refund"}, "unknown line kind"),
        ({"amount": 1.5}, "amount must be an int"),
        ({"amount": True}, "amount must be an int"),
        ({"quantity": 2.0}, "quantity"),
        ({"calls": -1}, "calls"),
        ({"seconds": -1}, "seconds"),
    ],
)
def test_bad_charges_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvoiceInputError, match=message):
        charge(**kw)


def test_input_errors_are_value_errors() -> None:
    assert issubclass(InvoiceInputError, ValueError)
    with pytest.raises(ValueError):
        usage_charge(UsageGroup("x", 1, 1, 1), "us")


def test_discount_lines_are_in_the_given_order_with_invoice_discounts_last() -> None:
    fixed = DiscountKind.FIXED
    inputs = InvoiceInputs(
        "USD",
        (Charge(LineKind.USAGE, "Calls", 1000, ("VAT",)), Charge(LineKind.RECURRING, "Plan", 1000)),
        discounts=(
            Discount("I", "i", fixed, 10, DiscountScope.INVOICE),
            Discount("R", "r", fixed, 10, DiscountScope.RECURRING),
            Discount("U", "u", fixed, 10, DiscountScope.USAGE),
        ),
        taxes=(VAT,),
    )
    assert [(x.ref, x.amount) for x in compose(inputs).lines[2:]] == [
        ("R", -10), ("U", -10), ("I", -5), ("I", -5),  # I: on 990 + 990, after R and U
    ]
