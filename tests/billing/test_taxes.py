"""Taxes: inclusive, exclusive and compound labels on one line and on a whole invoice, per-line
and per-invoice rounding, each against an independent Fraction model."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.taxes import (
    TaxLabel,
    TaxRounding,
    inclusive_parts,
    label_table,
    resolve,
    sort_labels,
    tax_line,
    tax_lines,
)
from tests.billing.test_minor_units import model_allocate, model_half_up

fast = settings(max_examples=300, deadline=None)
MODES = list(TaxRounding)


def pct(label: TaxLabel) -> Fraction:
    return Fraction(str(label.rate)) / 100


def in_order(labels: list[TaxLabel] | tuple[TaxLabel, ...]) -> list[TaxLabel]:
    return sorted(labels, key=lambda x: (x.order, x.code))


def per_unit_of_net(labels: list[TaxLabel]) -> tuple[dict[str, Fraction], Fraction]:
    """Model: the inclusive taxes on a net of exactly 1, and the gross that net makes."""
    on_one: dict[str, Fraction] = {}
    for x in in_order([x for x in labels if x.inclusive]):
        base = 1 + sum(on_one.values(), Fraction(0)) if x.compound else Fraction(1)
        on_one[x.code] = pct(x) * base
    return on_one, 1 + sum(on_one.values(), Fraction(0))


def model_line(amount: int, labels: list[TaxLabel]) -> tuple[int, list[tuple[str, int, int]]]:
    """Model of PER_LINE: (net, [(code, base, tax)]) for one line."""
    on_one, gross_of_one = per_unit_of_net(labels)
    net_exact = Fraction(amount) / gross_of_one
    inc_tax = {code: model_half_up(v * net_exact) for code, v in on_one.items()}
    net = amount - sum(inc_tax.values())
    out: list[tuple[str, int, int]] = []
    earlier = {True: 0, False: 0}
    for x in in_order(labels):
        base = net + earlier[x.inclusive] if x.compound else net
        tax = inc_tax[x.code] if x.inclusive else model_half_up(pct(x) * base)
        earlier[x.inclusive] += tax
        out.append((x.code, base, tax))
    return net, out


def model_invoice(
    lines: list[tuple[int, list[TaxLabel]]],
) -> tuple[list[tuple[int, list[tuple[str, int, int]]]], dict[str, Fraction]]:
    """Model of PER_INVOICE: per line (net, [(code, base, tax)]) and each label's exact sum."""
    everything = in_order(list({x.code: x for _, ls in lines for x in ls}.values()))
    tax: list[dict[str, int]] = [{} for _ in lines]
    base: list[dict[str, int]] = [{} for _ in lines]
    exact_sum: dict[str, Fraction] = {}

    def settle(code: str, exact: dict[int, Fraction]) -> None:
        indices = sorted(exact)
        for i, share in zip(indices, model_allocate([exact[i] for i in indices]), strict=True):
            tax[i][code] = share
        exact_sum[code] = sum(exact.values(), Fraction(0))

    for x in (x for x in everything if x.inclusive):
        exact = {}
        for i, (amount, ls) in enumerate(lines):
            if x in ls:
                on_one, gross_of_one = per_unit_of_net(ls)
                exact[i] = on_one[x.code] * amount / gross_of_one
        settle(x.code, exact)
    nets = [a - sum(tax[i][x.code] for x in ls if x.inclusive) for i, (a, ls) in enumerate(lines)]
    for x in everything:
        exact = {}
        for i, (_, ls) in enumerate(lines):
            if x in ls:
                same = [y for y in in_order(ls) if y.inclusive == x.inclusive]
                before = same[: same.index(x)]
                base[i][x.code] = nets[i] + (
                    sum(tax[i][y.code] for y in before) if x.compound else 0
                )
                exact[i] = pct(x) * base[i][x.code]
        if not x.inclusive:
            settle(x.code, exact)
    out = [
        (nets[i], [(x.code, base[i][x.code], tax[i][x.code]) for x in in_order(ls)])
        for i, (_, ls) in enumerate(lines)
    ]
    return out, exact_sum


rates = st.sampled_from(["0", "5", "7.5", "9.975", "18.5", "20", "100"]).map(Decimal) | st.integers(
    0, 1_000_000
).map(lambda n: Decimal(n).scaleb(-4))


@st.composite
def label_sets(draw: st.DrawFn) -> list[TaxLabel]:
    codes = draw(st.lists(st.sampled_from("ABCDE"), unique=True, max_size=4))
    return [
        TaxLabel(c, f"tax {c}", draw(rates), draw(st.booleans()), draw(st.booleans()),
                 draw(st.integers(0, 2)))
        for c in codes
    ]


amounts = st.integers(-(10**6), 10**8) | st.integers(-50, 50)


@st.composite
def invoices(draw: st.DrawFn) -> list[tuple[int, list[TaxLabel]]]:
    labels = draw(label_sets())
    n = draw(st.integers(0, 8))
    return [
        (draw(amounts), draw(st.lists(st.sampled_from(labels), unique_by=lambda x: x.code))
         if labels else [])
        for _ in range(n)
    ]


def label(code: str, rate: str, inclusive: bool = False, compound: bool = False,
          order: int = 0) -> TaxLabel:
    return TaxLabel(code, code, Decimal(rate), inclusive, compound, order)


# --- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["-0.01", "100.0001", "NaN", "Infinity", "-Infinity", "sNaN"])
def test_rates_outside_0_to_100_are_refused(rate: str) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        label("VAT", rate)


@pytest.mark.parametrize("rate", ["0", "100", "18.5", "0.0001"])
def test_rates_inside_0_to_100_are_accepted(rate: str) -> None:
    assert label("VAT", rate).rate == Decimal(rate)


def test_a_float_rate_is_refused() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        TaxLabel("VAT", "VAT", 20.0, False)  # type: ignore[arg-type]


def test_an_empty_code_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        label("", "5")


def test_codes_must_be_unique() -> None:
    with pytest.raises(ValueError, match="defined twice"):
        label_table([label("VAT", "20"), label("VAT", "10")])


def test_resolve_orders_labels_and_refuses_unknown_or_repeated_codes() -> None:
    table = label_table([label("B", "1"), label("A", "1", order=1), label("C", "1")])
    assert [x.code for x in resolve(["A", "C", "B"], table)] == ["B", "C", "A"]
    with pytest.raises(ValueError, match="unknown tax code 'Z'"):
        resolve(["A", "Z"], table)
    with pytest.raises(ValueError, match="twice"):
        resolve(["A", "A"], table)


def test_two_different_labels_with_one_code_are_refused_on_an_invoice() -> None:
    with pytest.raises(ValueError, match="share the code"):
        tax_lines([(100, [label("V", "5")]), (100, [label("V", "6")])], TaxRounding.PER_LINE)


# --- one line -----------------------------------------------------------------------------------


def figures(amount: int, labels: list[TaxLabel]) -> tuple[int, list[tuple[str, int, int]]]:
    line = tax_line(amount, labels)
    return line.net, [(t.code, t.base, t.amount) for t in line.taxes]


@pytest.mark.parametrize(
    ("amount", "labels", "net", "taxes"),
    [
        (1000, [label("T", "18.5")], 1000, [("T", 1000, 185)]),
        (5, [label("T", "10")], 5, [("T", 5, 1)]),  # 0.5: half-up, not half-even
        (25, [label("T", "10")], 25, [("T", 25, 3)]),  # 2.5 -> 3
        (-25, [label("T", "10")], -25, [("T", -25, -3)]),  # credits mirror
        (100, [label("V", "20", inclusive=True)], 83, [("V", 83, 17)]),  # 16.67 contained
        # compound: QST on (net + GST): 7.5 % of 10500 = 787.5 -> 788
        (10000, [label("QST", "7.5", compound=True, order=1), label("GST", "5")], 10000,
         [("GST", 10000, 500), ("QST", 10500, 788)]),
        # the same, contained in the price: 100000 * 1.05 * 1.075 = 112875
        (112875, [label("GST", "5", True), label("QST", "7.5", True, True, 1)], 100000,
         [("GST", 100000, 5000), ("QST", 105000, 7875)]),
        # inclusive VAT with an exclusive surcharge on the net
        (1200, [label("SUR", "10"), label("VAT", "20", inclusive=True)], 1000,
         [("SUR", 1000, 100), ("VAT", 1000, 200)]),
        # a compound exclusive tax never bases on an inclusive one
        (1200, [label("VAT", "20", True), label("X", "10", compound=True, order=1)], 1000,
         [("VAT", 1000, 200), ("X", 1000, 100)]),
        (999, [], 999, []),
        (0, [label("V", "20", True), label("T", "5")], 0, [("T", 0, 0), ("V", 0, 0)]),
    ],
)
def test_line_examples(
    amount: int, labels: list[TaxLabel], net: int, taxes: list[tuple[str, int, int]]
) -> None:
    assert figures(amount, labels) == (net, taxes)


def test_inclusive_parts_are_exact() -> None:
    parts = inclusive_parts(100, [label("V", "20", True)])
    assert parts == (Fraction(50, 3),)
    assert inclusive_parts(100, [label("T", "20")]) == ()


@fast
@given(amounts, label_sets())
def test_one_line_matches_the_model(amount: int, labels: list[TaxLabel]) -> None:
    assert figures(amount, labels) == model_line(amount, labels)
    net, taxes = figures(amount, labels)
    codes = {x.code: x for x in labels}
    assert net + sum(t for c, _, t in taxes if codes[c].inclusive) == amount
    assert figures(-amount, labels) == (-net, [(c, -b, -t) for c, b, t in taxes])


@fast
@given(amounts, label_sets())
def test_the_order_labels_are_given_in_does_not_matter(amount: int, labels: list[TaxLabel]) -> None:
    assert figures(amount, labels) == figures(amount, labels[::-1])
    assert [x.code for x in sort_labels(labels)] == [x.code for x in in_order(labels)]


# --- a whole invoice ------------------------------------------------------------------------------


def test_per_invoice_rounds_once_where_per_line_rounds_each_line() -> None:
    lines = [(5, [label("T", "10")])] * 3  # 0.5 tax each
    taxed, totals = tax_lines(lines, TaxRounding.PER_LINE)
    assert [t.tax for t in taxed] == [1, 1, 1] and totals[0].amount == 3
    taxed, totals = tax_lines(lines, TaxRounding.PER_INVOICE)
    assert [t.tax for t in taxed] == [0, 1, 1] and totals[0].amount == 2  # 1.5 -> 2
    assert (totals[0].base, totals[0].inclusive) == (15, False)


def test_per_invoice_inclusive_tax_is_allocated_and_nets_follow() -> None:
    lines = [(10, [label("V", "20", inclusive=True)])] * 3  # 1.666... contained in each
    taxed, totals = tax_lines(lines, TaxRounding.PER_LINE)
    assert [(t.net, t.tax) for t in taxed] == [(8, 2)] * 3 and totals[0].amount == 6
    taxed, totals = tax_lines(lines, TaxRounding.PER_INVOICE)
    assert [(t.net, t.tax) for t in taxed] == [(9, 1), (8, 2), (8, 2)]
    assert (totals[0].amount, totals[0].base) == (5, 25)


@fast
@given(invoices(), st.sampled_from(MODES))
def test_invoice_matches_the_model(
    lines: list[tuple[int, list[TaxLabel]]], mode: TaxRounding
) -> None:
    taxed, totals = tax_lines(lines, mode)
    got = [(t.net, [(x.code, x.base, x.amount) for x in t.taxes]) for t in taxed]
    if mode is TaxRounding.PER_LINE:
        assert got == [model_line(a, ls) for a, ls in lines]
    else:
        expected, exact = model_invoice(lines)
        assert got == expected
        for total in totals:
            if not total.inclusive:  # the invoice shows amount == rate x base, rounded once
                assert total.amount == model_half_up(Fraction(str(total.rate)) / 100 * total.base)
            else:
                assert total.amount == model_half_up(exact[total.code])
    used = in_order(list({x.code: x for _, ls in lines for x in ls}.values()))
    assert [t.code for t in totals] == [x.code for x in used]
    for total in totals:
        mine = [x for t in taxed for x in t.taxes if x.code == total.code]
        assert total.amount == sum(x.amount for x in mine)
        assert total.base == sum(x.base for x in mine)


@fast
@given(invoices())
def test_per_invoice_line_taxes_are_floor_or_ceiling_of_their_exact_share(
    lines: list[tuple[int, list[TaxLabel]]],
) -> None:
    taxed, _ = tax_lines(lines, TaxRounding.PER_INVOICE)
    for (amount, ls), t in zip(lines, taxed, strict=True):
        on_one, gross_of_one = per_unit_of_net(ls)
        shown = {x.code: x for x in t.taxes}
        for x in ls:
            exact = (on_one[x.code] * amount / gross_of_one if x.inclusive
                     else pct(x) * shown[x.code].base)
            assert floor(exact) <= shown[x.code].amount <= ceil(exact)


@fast
@given(invoices(), st.sampled_from(MODES))
def test_negating_every_line_negates_every_figure(
    lines: list[tuple[int, list[TaxLabel]]], mode: TaxRounding
) -> None:
    taxed, totals = tax_lines(lines, mode)
    neg_taxed, neg_totals = tax_lines([(-a, ls) for a, ls in lines], mode)
    assert [(t.net, [(x.code, x.base, x.amount) for x in t.taxes]) for t in neg_taxed] == [
        (-t.net, [(x.code, -x.base, -x.amount) for x in t.taxes]) for t in taxed
    ]
    assert [(t.base, t.amount) for t in neg_totals] == [(-t.base, -t.amount) for t in totals]


def test_an_unknown_rounding_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        tax_lines([], "per_month")  # type: ignore[arg-type]
