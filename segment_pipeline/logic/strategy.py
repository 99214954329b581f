"""Seed B, part 2: the Defend / Grow / Expand (/ Maintain) strategy for behavioural segments.

The classes and rules are configuration (`segment_pipeline/config/strategy_rules.yaml` by
default). A rule matches cells of the occupation group x price segment grid (the three tiers
and Unknown, for customers with no spend in a tiered category); the rule table is validated
before anything is computed: every one of the 16 cells must be matched by exactly one rule,
every rule must name a defined class and only known group / segment values. A table that
breaks this is refused with a message naming the cell(s) and rule(s), so a typo never leaves a
segment without a strategy or with two.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from segment_pipeline.logic.behaviour import (
    BEHAVIOURAL_SEGMENTS,
    CUSTOMER_PRICE_SEGMENTS,
    OCCUPATION_GROUPS,
)
from segment_pipeline.tables import Column, TableDef

DEFAULT_RULES_RESOURCE = "strategy_rules.yaml"
#: Joins a class's actions in strategy_summary.actions (so an action may not contain it).
ACTION_SEPARATOR = "; "
WILDCARD = "*"

#: The rule dimensions and the values each can take (the grid every rule table must cover).
RULE_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "occupation_group": OCCUPATION_GROUPS,
    "price_segment": CUSTOMER_PRICE_SEGMENTS,
}


class StrategyRuleError(ValueError):
    """The strategy rule table is invalid (the message names the cells / rules at fault)."""


@dataclass(frozen=True)
class StrategyClass:
    name: str
    goal: str
    description: str
    actions: tuple[str, ...]
    colour: int = 8

    @property
    def playbook(self) -> str:
        """Goal and actions as one line (stored with every segment)."""
        return f"{self.goal} Actions: " + ACTION_SEPARATOR.join(self.actions) + "."


@dataclass(frozen=True)
class StrategyRule:
    number: int  # 1-based position in the file, used in messages
    class_name: str
    matches: Mapping[str, frozenset[str]]

    def covers(self, cell: Mapping[str, str]) -> bool:
        return all(cell[dim] in values for dim, values in self.matches.items())

    def describe(self) -> str:
        parts = [
            f"{dim} in [{', '.join(v for v in RULE_DIMENSIONS[dim] if v in values)}]"
            if len(values) < len(RULE_DIMENSIONS[dim])
            else f"{dim} = *"
            for dim, values in self.matches.items()
        ]
        return f"rule #{self.number} ({self.class_name}: {'; '.join(parts)})"


@dataclass(frozen=True)
class RuleTable:
    classes: tuple[StrategyClass, ...]
    rules: tuple[StrategyRule, ...]
    rfm_actions: Mapping[str, str] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def strategy_class(self, name: str) -> StrategyClass:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise KeyError(name)

    def rule_for(self, occupation_group: str, price_segment: str) -> StrategyRule:
        """The one rule covering a cell (the table is validated, so there is exactly one)."""
        cell = {"occupation_group": occupation_group, "price_segment": price_segment}
        hits = [rule for rule in self.rules if rule.covers(cell)]
        if len(hits) != 1:
            raise StrategyRuleError(_cell_message(cell, hits))
        return hits[0]

    def grid(self) -> pd.DataFrame:
        """The class of every cell: occupation groups as rows, price segments as columns."""
        return pd.DataFrame(
            [
                [self.rule_for(occ, price).class_name for price in CUSTOMER_PRICE_SEGMENTS]
                for occ in OCCUPATION_GROUPS
            ],
            index=list(OCCUPATION_GROUPS),
            columns=list(CUSTOMER_PRICE_SEGMENTS),
        )


def all_cells() -> list[dict[str, str]]:
    """Every cell of the rule grid (4 occupation groups x 4 price segments: 3 tiers + Unknown)."""
    dims = list(RULE_DIMENSIONS)
    return [
        dict(zip(dims, combo, strict=True))
        for combo in itertools.product(*(RULE_DIMENSIONS[d] for d in dims))
    ]


def _cell_label(cell: Mapping[str, str]) -> str:
    return " x ".join(cell[d] for d in RULE_DIMENSIONS)


def _cell_message(cell: Mapping[str, str], hits: list[StrategyRule]) -> str:
    if not hits:
        return f"cell {_cell_label(cell)} is matched by no rule"
    return f"cell {_cell_label(cell)} is matched by {len(hits)} rules: " + ", ".join(
        rule.describe() for rule in hits
    )


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def load_rule_table(path: str | Path | None = None) -> RuleTable:
    """Read and validate a rule table (the bundled default when `path` is None)."""
    if path is None:
        # package data (pyproject: config/*.yaml); `config` is a data folder, not a package
        text = (
            resources.files("segment_pipeline")
            .joinpath("config", DEFAULT_RULES_RESOURCE)
            .read_text(encoding="utf-8")
        )
        origin = f"segment_pipeline/config/{DEFAULT_RULES_RESOURCE}"
    else:
        file = Path(path)
        if not file.is_file():
            raise StrategyRuleError(f"strategy rules file {file} does not exist")
        text = file.read_text(encoding="utf-8")
        origin = str(file)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StrategyRuleError(f"{origin}: not valid YAML: {exc}") from None
    try:
        return parse_rule_table(data)
    except StrategyRuleError as exc:
        raise StrategyRuleError(f"{origin}: {exc}") from None


def parse_rule_table(data: Any) -> RuleTable:
    """Build a RuleTable from the YAML structure and validate it (raises StrategyRuleError)."""
    if not isinstance(data, Mapping):
        raise StrategyRuleError("the rule table must be a mapping with 'classes' and 'rules'")
    classes = _parse_classes(data.get("classes"))
    names = [c.name for c in classes]
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise StrategyRuleError("'rules' must be a non-empty list")
    rules = tuple(_parse_rule(i, raw, names) for i, raw in enumerate(raw_rules, start=1))
    rfm_actions = data.get("rfm_actions") or {}
    if not isinstance(rfm_actions, Mapping):
        raise StrategyRuleError("'rfm_actions' must map RFM segment names to action text")
    table = RuleTable(
        classes=classes, rules=rules, rfm_actions={str(k): str(v) for k, v in rfm_actions.items()}
    )
    validate_rule_table(table)
    return table


def validate_rule_table(table: RuleTable) -> None:
    """Every cell matched by exactly one rule; lists every broken cell in one message."""
    problems = []
    for cell in all_cells():
        hits = [rule for rule in table.rules if rule.covers(cell)]
        if len(hits) != 1:
            problems.append(_cell_message(cell, hits))
    if problems:
        raise StrategyRuleError(
            "every occupation group x price segment cell needs exactly one rule:\n  "
            + "\n  ".join(problems)
        )


def _parse_classes(raw: Any) -> tuple[StrategyClass, ...]:
    if not isinstance(raw, list) or not raw:
        raise StrategyRuleError("'classes' must be a non-empty list")
    out = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise StrategyRuleError(f"class #{i} needs a name")
        actions = item.get("actions") or []
        if isinstance(actions, str) or not all(isinstance(a, str) for a in actions):
            raise StrategyRuleError(f"class {item['name']}: 'actions' must be a list of texts")
        if any(ACTION_SEPARATOR in a for a in actions):
            raise StrategyRuleError(
                f"class {item['name']}: an action may not contain {ACTION_SEPARATOR!r} (it "
                "separates actions in strategy_summary.actions)"
            )
        if not item.get("goal"):
            raise StrategyRuleError(f"class {item['name']}: needs a 'goal' (its playbook)")
        out.append(
            StrategyClass(
                name=str(item["name"]),
                goal=str(item["goal"]).strip(),
                description=str(item.get("description") or "").strip(),
                actions=tuple(a.strip() for a in actions),
                colour=int(item.get("colour", 8)),
            )
        )
    names = [c.name for c in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StrategyRuleError(f"class names must be unique: {', '.join(duplicates)}")
    return tuple(out)


def _parse_rule(number: int, raw: Any, class_names: list[str]) -> StrategyRule:
    if not isinstance(raw, Mapping):
        raise StrategyRuleError(f"rule #{number} must be a mapping")
    class_name = raw.get("class")
    if class_name not in class_names:
        raise StrategyRuleError(
            f"rule #{number} names class {class_name!r}, which is not defined "
            f"(classes: {', '.join(class_names)})"
        )
    unknown_keys = sorted(set(raw) - {"class", *RULE_DIMENSIONS})
    if unknown_keys:
        raise StrategyRuleError(
            f"rule #{number} ({class_name}) has unknown key(s) {', '.join(unknown_keys)}; "
            f"rules match on {', '.join(RULE_DIMENSIONS)}"
        )
    matches: dict[str, frozenset[str]] = {}
    for dim, allowed in RULE_DIMENSIONS.items():
        value = raw.get(dim, WILDCARD)
        values = [value] if isinstance(value, str) else list(value or [])
        if WILDCARD in values:
            matches[dim] = frozenset(allowed)
            continue
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise StrategyRuleError(
                f"rule #{number} ({class_name}): {dim} value(s) {bad or values} not in "
                f"{', '.join(allowed)} (or '*')"
            )
        matches[dim] = frozenset(values)
    return StrategyRule(number=number, class_name=str(class_name), matches=matches)


# --------------------------------------------------------------------------------------------
# Applying the rules
# --------------------------------------------------------------------------------------------

SEGMENT_STRATEGY = TableDef(
    schema="marts",
    name="segment_strategy",
    description="Every behavioural segment with exactly one strategy class (rule table) and "
    "the class's playbook.",
    columns=(
        *BEHAVIOURAL_SEGMENTS.columns,
        Column(
            "strategy_class",
            "VARCHAR",
            "Defend, Grow, Expand or Maintain (per the rule table)",
            nullable=False,
        ),
        Column("rule_number", "INTEGER", "The rule (position in the rule table) that matched"),
        Column("goal", "VARCHAR", "The class's goal"),
        Column("playbook", "VARCHAR", "Goal and example actions"),
    ),
    primary_key=("segment",),
)

STRATEGY_SUMMARY = TableDef(
    schema="marts",
    name="strategy_summary",
    description="Per strategy class: segments, customers, gross sales, revenue and customer "
    "share, AOV, and the playbook. Every class of the rule table has a row (zeros when empty).",
    columns=(
        Column("strategy_class", "VARCHAR", "Strategy class", nullable=False),
        Column("class_order", "INTEGER", "Order in the rule table (report / figure order)"),
        Column("segments", "BIGINT", "Behavioural segments in the class"),
        Column("customers", "BIGINT", "Customers"),
        Column("transactions", "BIGINT", "Sale lines"),
        Column("orders", "BIGINT", "Distinct orders"),
        Column("gross_sales", "DOUBLE", "Gross sales"),
        Column("aov", "DOUBLE", "gross_sales / orders"),
        Column("revenue_share", "DOUBLE", "Share of all gross sales (sums to 1)"),
        Column("customer_share", "DOUBLE", "Share of all customers (sums to 1)"),
        Column("value_index", "DOUBLE", "revenue_share / customer_share"),
        Column("goal", "VARCHAR", "The class's goal"),
        Column("actions", "VARCHAR", "Example actions, separated by '; '"),
        Column("description", "VARCHAR", "Who is in the class"),
    ),
    primary_key=("strategy_class",),
)


def assign_strategy(segments: pd.DataFrame, table: RuleTable) -> pd.DataFrame:
    """segment_strategy rows: each behavioural segment row with its one class and playbook."""
    out = segments.copy()
    rules = [
        table.rule_for(occ, price)
        for occ, price in zip(out["occupation_group"], out["price_segment"], strict=True)
    ]
    out["strategy_class"] = [r.class_name for r in rules]
    out["rule_number"] = pd.array([r.number for r in rules], dtype="Int32")
    out["goal"] = [table.strategy_class(r.class_name).goal for r in rules]
    out["playbook"] = [table.strategy_class(r.class_name).playbook for r in rules]
    return out[SEGMENT_STRATEGY.column_names]


def summarise_strategy(segment_strategy: pd.DataFrame, table: RuleTable) -> pd.DataFrame:
    """strategy_summary rows (one per class, in rule-table order, empty classes as zeros)."""
    grouped = segment_strategy.groupby("strategy_class").agg(
        segments=("segment", "count"),
        customers=("customers", "sum"),
        transactions=("transactions", "sum"),
        orders=("orders", "sum"),
        gross_sales=("gross_sales", "sum"),
    )
    total_sales = float(segment_strategy["gross_sales"].sum())
    total_customers = int(segment_strategy["customers"].sum())
    rows = []
    for order, cls in enumerate(table.classes, start=1):
        g = grouped.loc[cls.name] if cls.name in grouped.index else None
        segments = int(g["segments"]) if g is not None else 0
        customers = int(g["customers"]) if g is not None else 0
        orders = int(g["orders"]) if g is not None else 0
        sales = float(g["gross_sales"]) if g is not None else 0.0
        revenue_share = sales / total_sales if total_sales else None
        customer_share = customers / total_customers if total_customers else None
        rows.append(
            {
                "strategy_class": cls.name,
                "class_order": order,
                "segments": segments,
                "customers": customers,
                "transactions": int(g["transactions"]) if g is not None else 0,
                "orders": orders,
                "gross_sales": sales,
                "aov": sales / orders if orders else None,
                "revenue_share": revenue_share,
                "customer_share": customer_share,
                "value_index": (
                    revenue_share / customer_share
                    if revenue_share is not None and customer_share
                    else None
                ),
                "goal": cls.goal,
                "actions": ACTION_SEPARATOR.join(cls.actions),
                "description": cls.description,
            }
        )
    return pd.DataFrame(rows, columns=STRATEGY_SUMMARY.column_names)
