"""The `mapped` format's mapping file: a small YAML file that says which input column is which
and how values are written (see docs/sources.md and docs/examples/*.yaml). `load_mapping`
reads and validates it into a `DatasetMapping`; every problem is a DataContractError naming
the file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segment_pipeline.sources.base import (
    CUSTOMER_FIELDS,
    DEMOGRAPHIC_FIELDS,
    PRODUCT_FIELDS,
    REQUIRED_TRANSACTION_FIELDS,
    DataContractError,
)
from segment_pipeline.sources.data_files import CsvOptions
from segment_pipeline.sources.text_encodings import ACCEPTED_ENCODINGS, normalise_encoding
from segment_pipeline.sources.value_rules import SEPARATORS, ValueRules

__all__ = [
    "BAD_VALUE_MODES",
    "REQUIRED_MAPPING_FIELDS",
    "TOP_LEVEL_KEYS",
    "TRANSACTION_MAPPING_FIELDS",
    "DatasetMapping",
    "EntityMapping",
    "load_mapping",
]

TRANSACTION_MAPPING_FIELDS: tuple[str, ...] = (
    *REQUIRED_TRANSACTION_FIELDS,
    "amount",
    "product_name",
    "category",
)
REQUIRED_MAPPING_FIELDS: tuple[str, ...] = ("customer_id", "product_id", "quantity")
TOP_LEVEL_KEYS = (
    "transactions",
    "customers",
    "products",
    "timestamp_format",
    "decimal_separator",
    "thousands_separator",
    "currency_symbols",
    "delimiter",
    "encoding",
    "bad_values",
    "recode",
    "demographic_values",
)
BAD_VALUE_MODES = ("stop", "quarantine")


@dataclass(frozen=True)
class EntityMapping:
    """Where one entity's rows are (relative to the dataset folder; None = the folder itself)
    and which input column holds each field."""

    path: str | None
    columns: dict[str, str]


@dataclass(frozen=True)
class DatasetMapping:
    """A parsed, validated mapping file (see docs/sources.md, "mapped")."""

    source: Path
    transactions: EntityMapping
    demographics: dict[str, str] = field(default_factory=dict)
    customers: EntityMapping | None = None
    products: EntityMapping | None = None
    rules: ValueRules = field(default_factory=ValueRules)
    csv: CsvOptions = field(default_factory=CsvOptions)
    bad_values: str = "stop"
    recode: dict[str, dict[str, str]] = field(default_factory=dict)
    demographic_values: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _fail(mapping_file: Path, message: str) -> DataContractError:
    return DataContractError(f"mapping {mapping_file}: {message}")


def _str_map(mapping_file: Path, where: str, value: Any, allowed: Sequence[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(mapping_file, f"`{where}` must be a mapping of field: input column")
    out: dict[str, str] = {}
    for key, column in value.items():
        if key not in allowed:
            raise _fail(
                mapping_file,
                f"`{where}` has unknown field {key!r}; known fields: {', '.join(allowed)}",
            )
        if column is None or (isinstance(column, str) and not column.strip()):
            continue  # an explicit blank means "not in this dataset"
        if not isinstance(column, str | int):
            raise _fail(mapping_file, f"`{where}.{key}` must be a column name")
        out[str(key)] = str(column)
    return out


def _entity(mapping_file: Path, name: str, value: Any, allowed: Sequence[str]) -> EntityMapping:
    if not isinstance(value, dict):
        raise _fail(mapping_file, f"`{name}` must be a mapping with `columns` (and `path`)")
    unknown = set(value) - {"path", "columns", "demographics"}
    if unknown or ("demographics" in value and name != "transactions"):
        bad = sorted(
            unknown
            | ({"demographics"} if name != "transactions" and "demographics" in value else set())
        )
        raise _fail(mapping_file, f"`{name}` has unknown key(s) {', '.join(map(str, bad))}")
    path = value.get("path")
    if path is not None and not isinstance(path, str):
        raise _fail(mapping_file, f"`{name}.path` must be a file or folder name")
    return EntityMapping(
        path=path,
        columns=_str_map(mapping_file, f"{name}.columns", value.get("columns") or {}, allowed),
    )


def load_mapping(mapping_file: Path | None) -> DatasetMapping:
    """Read and validate a mapping file; every problem is a DataContractError naming the file."""
    if mapping_file is None:
        raise DataContractError(
            "format 'mapped' needs a mapping file: --mapping FILE (or SEGMENT_PIPELINE_MAPPING); "
            "see docs/sources.md"
        )
    mapping_file = Path(mapping_file)
    try:
        doc = yaml.safe_load(mapping_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(mapping_file, f"cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise _fail(mapping_file, f"is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise _fail(mapping_file, "must be a YAML mapping with a `transactions` section")
    unknown = sorted(set(doc) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise _fail(
            mapping_file,
            f"unknown key(s) {', '.join(map(str, unknown))}; known keys: "
            f"{', '.join(TOP_LEVEL_KEYS)}",
        )
    if "transactions" not in doc:
        raise _fail(mapping_file, "has no `transactions` section")
    tx = _entity(mapping_file, "transactions", doc["transactions"], TRANSACTION_MAPPING_FIELDS)
    missing = [f for f in REQUIRED_MAPPING_FIELDS if f not in tx.columns]
    if missing:
        raise _fail(mapping_file, f"`transactions.columns` must name {', '.join(missing)}")
    if ("unit_price" in tx.columns) == ("amount" in tx.columns):
        raise _fail(
            mapping_file,
            "`transactions.columns` must name exactly one of unit_price "
            "(price per unit) and amount (line total)",
        )
    demographics = _str_map(
        mapping_file,
        "transactions.demographics",
        doc["transactions"].get("demographics") or {},
        DEMOGRAPHIC_FIELDS,
    )
    customers = (
        _entity(mapping_file, "customers", doc["customers"], CUSTOMER_FIELDS)
        if doc.get("customers")
        else None
    )
    products = (
        _entity(mapping_file, "products", doc["products"], PRODUCT_FIELDS)
        if doc.get("products")
        else None
    )
    if customers and "customer_id" not in customers.columns:
        raise _fail(mapping_file, "`customers.columns` must name customer_id")
    if products and "product_id" not in products.columns:
        raise _fail(mapping_file, "`products.columns` must name product_id")
    if customers and demographics:
        raise _fail(
            mapping_file,
            "declare demographics either in `transactions.demographics` "
            "or in a `customers` file, not both",
        )

    ts_format = doc.get("timestamp_format")
    if ts_format is not None and (not isinstance(ts_format, str) or "%" not in ts_format):
        raise _fail(
            mapping_file,
            f"timestamp_format {ts_format!r} is not a strptime format such as '%d/%m/%Y %H:%M'",
        )
    decimal = str(doc.get("decimal_separator", "."))
    thousands = doc.get("thousands_separator") or ""
    if decimal not in (".", ","):
        raise _fail(mapping_file, f"decimal_separator must be '.' or ',' (not {decimal!r})")
    if thousands not in ("", *SEPARATORS) or thousands == decimal:
        raise _fail(
            mapping_file,
            f"thousands_separator {thousands!r} must be one of "
            f"{', '.join(repr(s) for s in SEPARATORS if s != decimal)} or empty",
        )
    symbols = doc.get("currency_symbols") or []
    if isinstance(symbols, str):
        symbols = [symbols]
    if not isinstance(symbols, list) or any(
        not isinstance(c, str)
        or not c.strip()
        or any(ch.isdigit() for ch in c)
        or c in (decimal, thousands)
        for c in symbols
    ):
        raise _fail(
            mapping_file,
            "currency_symbols must be a list of symbols written around amounts, such as "
            "['$', '€', 'EUR'] (no digits, not a separator)",
        )
    delimiter = str(doc.get("delimiter", ","))
    if len(delimiter) != 1 and delimiter != "\\t":
        raise _fail(mapping_file, f"delimiter must be one character (not {delimiter!r})")
    encoding = normalise_encoding(doc.get("encoding", "utf-8"))
    if encoding is None:
        raise _fail(
            mapping_file,
            f"encoding {doc.get('encoding')!r} is not supported; use one of: {ACCEPTED_ENCODINGS}",
        )
    bad_values = str(doc.get("bad_values", "stop"))
    if bad_values not in BAD_VALUE_MODES:
        raise _fail(mapping_file, f"bad_values must be one of {', '.join(BAD_VALUE_MODES)}")
    recode_doc = doc.get("recode") or {}
    if not isinstance(recode_doc, dict) or any(
        k not in DEMOGRAPHIC_FIELDS or not isinstance(v, dict) for k, v in recode_doc.items()
    ):
        raise _fail(
            mapping_file,
            "`recode` maps a demographic field to {value as found: "
            f"canonical value}}; fields: {', '.join(DEMOGRAPHIC_FIELDS)}",
        )
    recode = {k: {str(a): str(b) for a, b in v.items()} for k, v in recode_doc.items()}
    values_doc = doc.get("demographic_values") or {}
    if not isinstance(values_doc, dict) or any(
        k not in DEMOGRAPHIC_FIELDS or not isinstance(v, list) or not v
        for k, v in values_doc.items()
    ):
        raise _fail(
            mapping_file,
            "`demographic_values` lists, per demographic field, the values the source uses "
            f"(in their order), e.g. age_band: [19-24, 25-34, 65+]; fields: "
            f"{', '.join(DEMOGRAPHIC_FIELDS)}",
        )
    demographic_values = {k: tuple(str(x).strip() for x in v) for k, v in values_doc.items()}
    return DatasetMapping(
        source=mapping_file,
        transactions=tx,
        demographics=demographics,
        customers=customers,
        products=products,
        rules=ValueRules(ts_format, decimal, thousands, tuple(c.strip() for c in symbols)),
        csv=CsvOptions("\t" if delimiter == "\\t" else delimiter, encoding, mapping_file),
        bad_values=bad_values,
        recode=recode,
        demographic_values=demographic_values,
    )
