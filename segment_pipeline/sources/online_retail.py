"""The UCI "Online Retail" format (InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
UnitPrice, CustomerID, Country; the "Online Retail II" names Invoice, Price and Customer ID are
accepted too).

Files: a folder of `YYYY-MM-DD.csv` (or `.parquet`) day files, like
`../shared/data/online_retail_2010_12/`, or a folder / single file holding any span of days
(each row then goes to the day of its InvoiceDate).

The format's quirks are handled by the rules below, applied here in SQL and documented in
docs/sources.md. No row is dropped: each one ends in staging (sales or returns) or in the
quarantine with a rule.

- **Cancellations**: an InvoiceNo starting with "C" is a cancellation. Its lines have negative
  quantities and go to `staging.returns`. A "C" line with a *positive* quantity is
  contradictory; the invoice prefix wins: the quantity is negated (it becomes a return) and the
  quantity as found is kept in `extra.quantity_as_found`.
- **Missing CustomerID**: left empty, so staging quarantines the line as `customer_id_missing`.
- **CustomerID `17850.0`** (a float artefact of the spreadsheet export) becomes `17850`.
- **Non-product codes** (postage, carriage, manual adjustments, discounts, fees, samples, bad
  debt, gift vouchers; `NON_PRODUCT_CODES`) are not products and must not enter product
  analysis: their product_id is left empty, so staging quarantines them as
  `non_product_line` (staging applies `extra.adapter_rule`), with the kind and the code.
- **Zero unit price** with a customer: kept as a sale line worth 0 (the data contract allows
  price >= 0; they are free items on real invoices). Most zero-price lines have no customer
  and are quarantined for that.
- **Duplicated lines** (an exact repeat within an invoice): staging's `duplicate_line` rule.
- **Category**: the data has none; one is derived from the Description by the keyword rules
  in `CATEGORY_RULES` (first match wins; `Unknown` when nothing matches).
- **Country** (and any other column) is kept in `extra`.
- **InvoiceDate** is read as ISO (`2010-12-01 08:26:00`) or as the original export's
  `12/1/2010 8:26` (month first), which is rewritten to ISO; anything else is passed on as
  found and quarantined by staging as `order_ts_unparseable`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from segment_pipeline.settings import DEFAULT_UNDATED_DAY
from segment_pipeline.sources.base import DataContractError
from segment_pipeline.sources.data_files import extra_json, mcol, sql_literal
from segment_pipeline.sources.file_source import FileDatasetSource

#: Internal name -> accepted input column names (Online Retail, then Online Retail II).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "invoice": ("InvoiceNo", "Invoice"),
    "stock_code": ("StockCode",),
    "description": ("Description",),
    "quantity": ("Quantity",),
    "invoice_date": ("InvoiceDate",),
    "unit_price": ("UnitPrice", "Price"),
    "customer_id": ("CustomerID", "Customer ID"),
}
OPTIONAL_COLUMNS = ("description",)

#: StockCodes that are charges or adjustments, not products (compared upper-cased), with what
#: they are. `GIFT_0001_*` (gift vouchers) is matched by prefix.
NON_PRODUCT_CODES: dict[str, str] = {
    "POST": "postage",
    "DOT": "postage",
    "C2": "carriage",
    "M": "manual adjustment",
    "D": "discount",
    "S": "samples",
    "B": "bad debt adjustment",
    "ADJUST": "adjustment",
    "ADJUST2": "adjustment",
    "BANK CHARGES": "bank charges",
    "AMAZONFEE": "marketplace fee",
    "CRUK": "charity commission",
    "PADS": "nominal-price item",
    "TEST001": "test",
    "TEST002": "test",
}
GIFT_VOUCHER_PREFIX = "GIFT_0001"

#: Category from the Description: (category, keywords); the first rule with a keyword present
#: as a whole word (or phrase) wins; no match -> `Unknown`. Order matters: a theme (Christmas)
#: before an object type (candle), specific phrases (LUNCH BOX, HOT WATER BOTTLE) before the
#: generic words (BOX, BOTTLE) of later rules.
CATEGORY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Christmas",
        (
            "CHRISTMAS",
            "XMAS",
            "ADVENT",
            "SANTA",
            "REINDEER",
            "SNOWFLAKE",
            "SNOWMAN",
            "NATIVITY",
            "BAUBLE",
            "BAUBLES",
        ),
    ),
    (
        "Candles & Lighting",
        (
            "T-LIGHT",
            "T-LIGHTS",
            "TEA LIGHT",
            "TEALIGHT",
            "CANDLE",
            "CANDLES",
            "CANDLEHOLDER",
            "LANTERN",
            "LIGHT",
            "LIGHTS",
            "LAMP",
        ),
    ),
    (
        "Home Comfort",
        (
            "HOT WATER BOTTLE",
            "HOTTIE",
            "HAND WARMER",
            "POCKET WARMER",
            "WARMER",
            "CUSHION",
            "CUSHION COVER",
            "THROW",
            "BLANKET",
            "QUILT",
            "DOORMAT",
        ),
    ),
    ("Bags", ("BAG", "BAGS", "SHOPPER", "TOTE")),
    (
        "Kitchen & Dining",
        (
            "MUG",
            "MUGS",
            "CUP",
            "CUPS",
            "SAUCER",
            "PLATE",
            "PLATES",
            "BOWL",
            "BOWLS",
            "TEAPOT",
            "JUG",
            "CUTLERY",
            "NAPKINS",
            "BAKING",
            "CAKE",
            "CAKESTAND",
            "CAKE CASES",
            "JAM",
            "COOKIE",
            "RECIPE",
            "APRON",
            "KITCHEN",
            "TEA TOWEL",
            "TEA TOWELS",
            "LUNCH BOX",
            "TRAY",
            "SPOON",
            "CHOPSTICKS",
            "COASTER",
            "COASTERS",
            "GLASS",
            "BEAKER",
            "TUMBLER",
            "PANTRY",
            "OVEN GLOVE",
            "JELLY MOULD",
            "EGG CUP",
            "SPOONS",
            "FRYING PAN",
            "TEA FOR ONE",
            "TEA CADDY",
            "COFFEE",
            "SUGAR",
            "CONTAINER",
            "MEASURING",
            "TEA SET",
            "DISH",
            "PLACEMATS",
        ),
    ),
    (
        "Stationery & Cards",
        (
            "CARD",
            "CARDS",
            "PAPER",
            "NOTEBOOK",
            "PENCIL",
            "PENCILS",
            "PEN",
            "PENS",
            "WRAP",
            "WRAPPING",
            "TAPE",
            "STICKER",
            "STICKERS",
            "ENVELOPE",
            "ENVELOPES",
            "CALENDAR",
            "ERASER",
            "RULER",
            "DIARY",
            "JOURNAL",
            "NOTEPAD",
            "MEMO",
            "STATIONERY",
            "ERASERS",
            "CALCULATOR",
            "WRITING SET",
            "NOTEBOOKS",
            "BOOKMARK",
        ),
    ),
    (
        "Party & Gifts",
        (
            "PARTY",
            "BIRTHDAY",
            "GIFT",
            "BALLOON",
            "BALLOONS",
            "CRACKER",
            "CRACKERS",
            "RIBBON",
            "RIBBONS",
            "CONFETTI",
            "BUNTING",
        ),
    ),
    (
        "Toys & Games",
        (
            "TOY",
            "TOYS",
            "GAME",
            "GAMES",
            "DOLL",
            "DOLLY",
            "JIGSAW",
            "PUZZLE",
            "SKITTLES",
            "DOMINOES",
            "PLAYHOUSE",
            "CRAYONS",
            "COLOURING",
            "SPACEBOY",
            "SOLDIER",
            "TEDDY",
            "MAGIC DRAWING",
            "SPINNING TOPS",
            "SKIPPING ROPE",
            "BINGO",
            "SNAKES & LADDERS",
            "GLIDERS",
            "INFLATABLE",
            "PIGGY BANK",
            "MARBLES",
            "KIDS",
        ),
    ),
    (
        "Crafts & Sewing",
        (
            "SEWING",
            "KNITTING",
            "FELTCRAFT",
            "CRAFT",
            "CLAY",
            "PAINT SET",
            "CHALK",
            "BUTTONS",
            "CROCHET",
            "EMBROIDERY",
        ),
    ),
    (
        "Bath & Beauty",
        (
            "PLASTERS",
            "SOAP",
            "BATH",
            "TISSUES",
            "MAKE UP",
            "WASHBAG",
            "TOILETRIES",
            "TOOTHBRUSH",
            "LIP GLOSS",
            "NAIL",
        ),
    ),
    (
        "Fashion & Accessories",
        (
            "PURSE",
            "NECKLACE",
            "EARRINGS",
            "BRACELET",
            "RING",
            "JEWELLERY",
            "UMBRELLA",
            "HAIR",
            "SCARF",
            "HANDBAG",
            "BROOCH",
            "SLIPPERS",
            "GLOVES",
            "HAT",
            "KEYRING",
            "KEY RING",
            "CHARM",
            "PARASOL",
            "SUNGLASSES",
        ),
    ),
    (
        "Garden & Outdoor",
        (
            "GARDEN",
            "PLANT",
            "PLANTER",
            "WATERING",
            "BIRD",
            "BIRDHOUSE",
            "FLOWER POT",
            "SEED",
            "SEEDS",
            "PICNIC",
            "HERB",
        ),
    ),
    (
        "Home Decor",
        (
            "SIGN",
            "FRAME",
            "CLOCK",
            "HOOK",
            "HOOKS",
            "DECORATION",
            "DECORATIONS",
            "GARLAND",
            "MIRROR",
            "VASE",
            "ORNAMENT",
            "WREATH",
            "HANGING",
            "WALL ART",
            "PHOTO",
            "COAT HANGER",
            "DOORSTOP",
            "CHIME",
            "BLACKBOARD",
            "CHALKBOARD",
            "BLACK BOARD",
            "MEMOBOARD",
            "BLOCK WORD",
            "BLOCK LETTERS",
            "HEART",
            "HEARTS",
            "WICKER",
            "DOVE",
            "COAT RACK",
            "OIL BURNER",
            "MAGNETS",
            "MAGNET",
            "PEGS",
            "STAR",
            "CANDLESTICK",
            "FIGURE",
            "BELL",
        ),
    ),
    (
        "Storage & Boxes",
        (
            "BOX",
            "BOXES",
            "TIN",
            "TINS",
            "BASKET",
            "STORAGE",
            "DRAWER",
            "JAR",
            "JARS",
            "CASE",
            "CASES",
            "CABINET",
            "HOLDER",
            "TRINKET POT",
            "CHEST",
            "CRATE",
        ),
    ),
)
UNKNOWN_CATEGORY = "Unknown"
NON_PRODUCT_CATEGORY = "Non-product"

#: Timestamp layouts besides ISO: the original export writes `12/1/2010 8:26` (month first).
US_TIMESTAMP_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")


def category_case(description_sql: str) -> str:
    """SQL CASE deriving the category from a description expression (see CATEGORY_RULES)."""
    text = f"upper({description_sql})"
    whens = []
    for category, keywords in CATEGORY_RULES:
        # Whole words: CARD matches "GREETING CARD" but not "CARDHOLDER".
        alternatives = "|".join(keywords)
        pattern = rf"\b({alternatives})\b"
        whens.append(
            f"WHEN regexp_matches({text}, {sql_literal(pattern)}) THEN {sql_literal(category)}"
        )
    return f"CASE {' '.join(whens)} ELSE {sql_literal(UNKNOWN_CATEGORY)} END"


def non_product_kind_sql(code_sql: str) -> str:
    """SQL: the kind of non-product line for a StockCode expression, NULL for products."""
    code = f"upper(trim({code_sql}))"
    whens = " ".join(
        f"WHEN {sql_literal(c)} THEN {sql_literal(kind)}" for c, kind in NON_PRODUCT_CODES.items()
    )
    return (
        f"CASE WHEN starts_with({code}, {sql_literal(GIFT_VOUCHER_PREFIX)}) THEN "
        f"'gift voucher' ELSE CASE {code} {whens} END END"
    )


class OnlineRetailSource(FileDatasetSource):
    """UCI Online Retail files."""

    def __init__(self, location: Path, *, undated_day: date = DEFAULT_UNDATED_DAY) -> None:
        super().__init__(location, undated_day=undated_day)

    @property
    def transaction_location(self) -> Path:
        nested = self.location / "transactions"
        return nested if nested.is_dir() else self.location

    def describe(self) -> str:
        return f"Online Retail dataset at {self.transaction_location}"

    def transaction_columns(self, path: Path, columns: list[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for name, aliases in COLUMN_ALIASES.items():
            match = next((a for a in aliases if a in columns), None)
            if match is None and name not in OPTIONAL_COLUMNS:
                raise DataContractError(
                    f"{path}: missing Online Retail column {' or '.join(aliases)} "
                    f"(the file has: {', '.join(columns)})"
                )
            found[name] = match
        return found

    def timestamp_expr(self) -> str:
        value = f"nullif(trim(src.{mcol('invoice_date')}), '')"
        formats = "[" + ", ".join(sql_literal(f) for f in US_TIMESTAMP_FORMATS) + "]"
        return f"coalesce(TRY_CAST({value} AS TIMESTAMP), try_strptime({value}, {formats}))"

    def transaction_selects(self) -> dict[str, str]:
        def m(name: str) -> str:
            return f"src.{mcol(name)}"

        invoice, quantity = m("invoice"), m("quantity")
        raw_date = m("invoice_date")
        kind = non_product_kind_sql(m("stock_code"))
        cancellation = f"upper(trim({invoice})) LIKE 'C%'"
        positive = (
            f"regexp_full_match(trim({quantity}), '\\+?[0-9]+') "
            f"AND TRY_CAST(trim({quantity}) AS BIGINT) > 0"
        )
        flipped = f"({cancellation} AND {positive})"
        return {
            "order_id": invoice,
            "customer_id": (
                f"regexp_replace(trim({m('customer_id')}), "
                r"'^([0-9]+)\.0*$', '\1')"
            ),
            # ISO text passes as found; the export's `12/1/2010 8:26` is rewritten to ISO;
            # anything else passes as found, for staging to quarantine.
            "order_ts": (
                f"CASE WHEN TRY_CAST(trim({raw_date}) AS TIMESTAMP) IS NULL AND "
                f"({self.timestamp_expr()}) IS NOT NULL "
                f"THEN CAST({self.timestamp_expr()} AS VARCHAR) ELSE {raw_date} END"
            ),
            "product_id": f"CASE WHEN {kind} IS NULL THEN {m('stock_code')} END",
            "quantity": (
                f"CASE WHEN {flipped} THEN '-' || ltrim(trim({quantity}), '+') ELSE {quantity} END"
            ),
            "unit_price": m("unit_price"),
            "product_name": m("description"),
            "category": (
                f"CASE WHEN {kind} IS NOT NULL THEN {sql_literal(NON_PRODUCT_CATEGORY)} "
                f"ELSE {category_case(m('description'))} END"
            ),
            "extra": extra_json(
                ("adapter_rule", f"CASE WHEN {kind} IS NOT NULL THEN 'non_product_line' END"),
                (
                    "adapter_detail",
                    f"CASE WHEN {kind} IS NOT NULL THEN "
                    f"'StockCode=' || {m('stock_code')} || ' (' || {kind} || ')' END",
                ),
                ("non_product", kind),
                ("StockCode", f"CASE WHEN {kind} IS NOT NULL THEN {m('stock_code')} END"),
                ("quantity_as_found", f"CASE WHEN {flipped} THEN {quantity} END"),
            ),
        }
