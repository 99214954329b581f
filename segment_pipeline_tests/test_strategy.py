"""Strategy rules: the default table cell by cell, validation messages, and the invariant that
every behavioural segment gets exactly one class."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_pipeline.logic.behaviour import CUSTOMER_PRICE_SEGMENTS, OCCUPATION_GROUPS
from segment_pipeline.logic.strategy import (
    SEGMENT_STRATEGY,
    STRATEGY_SUMMARY,
    StrategyRuleError,
    assign_strategy,
    load_rule_table,
    parse_rule_table,
    summarise_strategy,
)

#: The documented default (docs/behaviour_and_strategy.md and the YAML header), written out by
#: hand: occupation group -> (Price_Low, Price_Mid, Price_High, Unknown). Unknown = no spend in
#: a tiered category (only products without a category).
DEFAULT_GRID = {
    "Occ_High": ("Expand", "Grow", "Defend", "Maintain"),
    "Occ_Mid": ("Expand", "Grow", "Defend", "Maintain"),
    "Occ_Low": ("Maintain", "Maintain", "Maintain", "Maintain"),
    "Occ_Other": ("Maintain", "Maintain", "Maintain", "Maintain"),
}
DEFAULT_CELLS = [
    (occ, price, DEFAULT_GRID[occ][i])
    for occ in DEFAULT_GRID
    for i, price in enumerate(("Price_Low", "Price_Mid", "Price_High", "Unknown"))
]


@pytest.fixture(scope="module")
def default_table():
    return load_rule_table()


@pytest.mark.parametrize(("occupation_group", "price_segment", "expected"), DEFAULT_CELLS)
def test_default_rule_table_every_cell(
    default_table, occupation_group: str, price_segment: str, expected: str
) -> None:
    assert default_table.rule_for(occupation_group, price_segment).class_name == expected


def test_default_table_covers_the_whole_grid(default_table) -> None:
    assert len(DEFAULT_CELLS) == len(OCCUPATION_GROUPS) * len(CUSTOMER_PRICE_SEGMENTS) == 16
    assert default_table.class_names == ["Defend", "Grow", "Expand", "Maintain"]
    grid = default_table.grid()
    assert grid.loc["Occ_High", "Price_High"] == "Defend"
    assert grid.loc["Occ_High", "Unknown"] == "Maintain"


def test_default_playbooks_follow_seed_b(default_table) -> None:
    def text(name: str) -> str:
        cls = default_table.strategy_class(name)
        return (cls.goal + " " + " ".join(cls.actions)).lower()

    for word in ("retain", "vip", "limited edition", "premium bundle"):
        assert word in text("Defend")
    for word in ("average order value", "frequency", "upsell", "sets", "personalised"):
        assert word in text("Grow")
    for word in ("price tier", "entry premium", "trial upgrade", "coupon"):
        assert word in text("Expand")
    assert default_table.strategy_class("Maintain").goal
    assert "Champions" in default_table.rfm_actions


def _table(rules: list[dict], classes: tuple[str, ...] = ("A", "B")) -> dict:
    return {
        "classes": [{"name": c, "goal": f"goal {c}", "actions": [f"do {c}"]} for c in classes],
        "rules": rules,
    }


def test_a_cell_matched_by_no_rule_is_named() -> None:
    data = _table(
        [
            {"class": "A", "occupation_group": ["Occ_High", "Occ_Mid", "Occ_Other"]},
            {
                "class": "B",
                "occupation_group": ["Occ_Low"],
                "price_segment": ["Price_Low", "Price_Mid", "Unknown"],
            },
        ]
    )
    with pytest.raises(StrategyRuleError) as err:
        parse_rule_table(data)
    assert "cell Occ_Low x Price_High is matched by no rule" in str(err.value)
    assert str(err.value).count("\n  cell ") == 1  # only that cell


def test_a_cell_matched_by_two_rules_is_named_with_both_rules() -> None:
    data = _table(
        [
            {"class": "A", "occupation_group": "*", "price_segment": ["Price_High"]},
            {
                "class": "B",
                "occupation_group": "*",
                "price_segment": ["Price_Low", "Price_Mid", "Unknown"],
            },
            {"class": "B", "occupation_group": ["Occ_Mid"], "price_segment": ["Price_High"]},
        ]
    )
    with pytest.raises(StrategyRuleError) as err:
        parse_rule_table(data)
    message = str(err.value)
    assert "cell Occ_Mid x Price_High is matched by 2 rules" in message
    assert "rule #1 (A" in message and "rule #3 (B" in message
    assert message.count("\n  cell ") == 1


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ([{"class": "Nope"}], "names class 'Nope', which is not defined"),
        ([{"class": "A", "occupation_group": ["Occ_Hgh"]}], "Occ_Hgh"),
        ([{"class": "A", "price_segment": []}], "price_segment"),
        ([{"class": "A", "age_band": ["26-35"]}], "unknown key(s) age_band"),
        ([], "'rules' must be a non-empty list"),
    ],
)
def test_invalid_rules_are_rejected(rules: list[dict], fragment: str) -> None:
    with pytest.raises(StrategyRuleError) as err:
        parse_rule_table(_table(rules))
    assert fragment in str(err.value)


def test_class_definitions_are_checked() -> None:
    data = _table([{"class": "A"}], classes=("A", "A"))
    with pytest.raises(StrategyRuleError, match="unique"):
        parse_rule_table(data)
    data = _table([{"class": "A"}], classes=("A",))
    data["classes"][0]["actions"] = ["one; two"]
    with pytest.raises(StrategyRuleError, match="may not contain"):
        parse_rule_table(data)
    data["classes"][0]["actions"] = ["one"]
    data["classes"][0]["goal"] = ""
    with pytest.raises(StrategyRuleError, match="goal"):
        parse_rule_table(data)


def test_wildcard_rule_covers_everything() -> None:
    table = parse_rule_table(_table([{"class": "A"}], classes=("A",)))
    assert {
        table.rule_for(o, p).class_name
        for o, p in itertools.product(OCCUPATION_GROUPS, CUSTOMER_PRICE_SEGMENTS)
    } == {"A"}


def test_rules_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(yaml.safe_dump(_table([{"class": "A", "price_segment": ["Price_Low"]}])))
    with pytest.raises(StrategyRuleError) as err:
        load_rule_table(bad)
    assert str(bad) in str(err.value) and "matched by no rule" in str(err.value)
    bad.write_text("classes: [unclosed")
    with pytest.raises(StrategyRuleError, match="not valid YAML"):
        load_rule_table(bad)
    with pytest.raises(StrategyRuleError, match="does not exist"):
        load_rule_table(tmp_path / "missing.yaml")


def test_custom_rules_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        yaml.safe_dump(
            _table(
                [
                    {"class": "A", "price_segment": ["Price_High"]},
                    {"class": "B", "price_segment": ["Price_Low", "Price_Mid", "Unknown"]},
                ]
            )
        )
    )
    table = load_rule_table(path)
    assert table.rule_for("Occ_Low", "Price_High").class_name == "A"
    assert table.rule_for("Occ_High", "Price_Low").class_name == "B"


# --------------------------------------------------------------------------------------------
# Applying the rules
# --------------------------------------------------------------------------------------------


def _segments(cells: list[tuple[str, str, int, int, float]]) -> pd.DataFrame:
    """Behavioural segment rows from (occupation group, price segment, customers, orders,
    gross sales)."""
    total_sales = sum(c[4] for c in cells)
    total_customers = sum(c[2] for c in cells)
    rows = []
    for i, (occ, price, customers, orders, sales) in enumerate(cells):
        rows.append(
            {
                "segment": f"26-35 | M | {occ} | {price} | {i}",
                "age_band": "26-35",
                "gender": "M",
                "occupation_group": occ,
                "price_segment": price,
                "customers": customers,
                "transactions": orders,
                "orders": orders,
                "gross_sales": sales,
                "aov": sales / orders,
                "revenue_share": sales / total_sales,
                "customer_share": customers / total_customers,
                "value_index": (sales / total_sales) / (customers / total_customers),
                "sales_rank": i + 1,
            }
        )
    return pd.DataFrame(rows)


def test_assign_and_summarise_hand_computed(default_table) -> None:
    segments = _segments(
        [
            ("Occ_High", "Price_High", 10, 20, 600.0),  # Defend
            ("Occ_Mid", "Price_High", 10, 10, 200.0),  # Defend
            ("Occ_Mid", "Price_Mid", 20, 25, 150.0),  # Grow
            ("Occ_Low", "Price_Low", 60, 60, 50.0),  # Maintain
        ]
    )
    assigned = assign_strategy(segments, default_table)
    assert list(assigned.columns) == SEGMENT_STRATEGY.column_names
    assert assigned["strategy_class"].tolist() == ["Defend", "Defend", "Grow", "Maintain"]
    assert assigned["playbook"].iloc[0].startswith(default_table.strategy_class("Defend").goal)
    summary = summarise_strategy(assigned, default_table).set_index("strategy_class")
    assert list(summary.reset_index().columns) == STRATEGY_SUMMARY.column_names
    # Defend: 2 segments, 20 customers, 30 orders, 800 of 1000 sales, 20 of 100 customers
    defend = summary.loc["Defend"]
    assert (defend["segments"], defend["customers"], defend["orders"]) == (2, 20, 30)
    assert defend["gross_sales"] == pytest.approx(800)
    assert defend["aov"] == pytest.approx(800 / 30)
    assert defend["revenue_share"] == pytest.approx(0.8)
    assert defend["customer_share"] == pytest.approx(0.2)
    assert defend["value_index"] == pytest.approx(4.0)
    # Expand has no segment: a zero row, not a missing one
    expand = summary.loc["Expand"]
    assert (expand["segments"], expand["customers"], expand["gross_sales"]) == (0, 0, 0)
    assert expand["revenue_share"] == 0 and pd.isna(expand["aov"])
    assert summary["class_order"].tolist() == [1, 2, 3, 4]
    assert summary["revenue_share"].sum() == pytest.approx(1)


_CELL = st.tuples(st.sampled_from(OCCUPATION_GROUPS), st.sampled_from(CUSTOMER_PRICE_SEGMENTS))


@settings(max_examples=40, deadline=None)
@given(
    assignment=st.lists(st.sampled_from(["A", "B", "C"]), min_size=16, max_size=16),
    segments=st.lists(
        st.tuples(_CELL, st.integers(1, 50), st.integers(1, 1000)), min_size=1, max_size=40
    ),
    drop=st.one_of(st.none(), st.integers(0, 15)),
    duplicate=st.one_of(st.none(), st.integers(0, 15)),
)
def test_every_segment_gets_exactly_one_class(assignment, segments, drop, duplicate) -> None:
    """Random rule tables (one rule per cell, grouped by class in random ways): a table that
    covers every cell once classifies every segment exactly once with the intended class; a
    table with a dropped or a duplicated cell is rejected naming that cell."""
    cells = list(itertools.product(OCCUPATION_GROUPS, CUSTOMER_PRICE_SEGMENTS))
    intended = dict(zip(cells, assignment, strict=True))
    rules = [
        {"class": cls, "occupation_group": [occ], "price_segment": [price]}
        for (occ, price), cls in intended.items()
    ]
    if drop is not None:
        rules.pop(drop)
    duplicated = duplicate is not None and duplicate < len(rules)
    if duplicated:
        rules.append(dict(rules[duplicate], **{"class": "C"}))
    data = _table(rules, classes=("A", "B", "C"))
    if drop is not None or duplicated:
        with pytest.raises(StrategyRuleError) as err:
            parse_rule_table(data)
        if drop is not None:
            occ, price = cells[drop]
            assert f"cell {occ} x {price} is matched by no rule" in str(err.value)
        return
    table = parse_rule_table(data)
    frame = _segments([(occ, price, n, n, float(s)) for (occ, price), n, s in segments])
    assigned = assign_strategy(frame, table)
    assert len(assigned) == len(frame)
    assert assigned["segment"].is_unique
    for _, row in assigned.iterrows():
        assert row["strategy_class"] == intended[(row["occupation_group"], row["price_segment"])]
    summary = summarise_strategy(assigned, table)
    assert int(summary["segments"].sum()) == len(frame)
    assert summary["revenue_share"].sum() == pytest.approx(1)
