"""The RFM layer's parameters: the `rfm_settings` resource (:class:`RfmSettings`), validated -
segment map included - before any asset does work, and the RFM window as asset metadata."""

from datetime import date

import dagster as dg
import duckdb
from pydantic import Field

from segment_pipeline.logic.rfm import (
    SEGMENT_NAMES,
    RfmWindow,
    RfmWindowError,
    SegmentMap,
    load_segment_map,
    resolve_window,
)

RESOURCE_KEY = "rfm_settings"

DEFAULT_TOP5_SEGMENTS = [
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "At Risk",
    "Can't Lose Them",
]


class RfmSettings(dg.ConfigurableResource):
    """Parameters of the RFM segmentation and the segment x product analysis.

    Every field has a default that works on the bundled sample; override them in the run
    config (`resources: {rfm_settings: {config: {...}}}`) or the UI launchpad.
    """

    segment_map_path: str | None = Field(
        default=None,
        description="YAML file with a replacement R x F segment map (default: the packaged "
        "segment_pipeline/config/segment_map.yaml). Validated before any work.",
    )
    as_of: str | None = Field(
        default=None,
        description="Reference date for recency, YYYY-MM-DD (default: the day after the last "
        "sale line in the window). Lines on or after it are outside the window.",
    )
    window_start: str | None = Field(
        default=None, description="First order date analysed, YYYY-MM-DD (default: all history)"
    )
    window_end: str | None = Field(
        default=None, description="Last order date analysed, YYYY-MM-DD (default: all history)"
    )
    lookback_days: int | None = Field(
        default=None,
        description="Analyse only the last N days before as_of (combined with window_start: "
        "the later start wins)",
    )
    prior_strength: float = Field(
        default=10.0,
        description="Shrinkage prior strength in pseudo-customers: the overall category mix is "
        "added with the weight of this many of the segment's own customers (a segment of n "
        "customers keeps the weight n / (n + k))",
    )
    min_support_customers: int = Field(
        default=10,
        description="A segment x category cell with fewer buying customers is flagged low_support",
    )
    premium_top_share: float = Field(
        default=0.2,
        description="A product is premium when its typical price is in this top share of its "
        "category (0.2 = top 20%)",
    )
    top_n: int = Field(default=10, description="Products per segment in segment_top_products")
    top5_segments: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TOP5_SEGMENTS),
        description="Segments shown in spa_segment_top5_products.png (display order is the "
        "segment map's)",
    )

    def check_settings(self) -> SegmentMap:
        """Check every parameter and load the segment map; raise one clear error."""
        problems: list[str] = []
        for name in ("as_of", "window_start", "window_end"):
            value = getattr(self, name)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    problems.append(f"{name} must be a YYYY-MM-DD date, got {value!r}")
        if self.lookback_days is not None and self.lookback_days < 1:
            problems.append(f"lookback_days must be >= 1, got {self.lookback_days}")
        if self.prior_strength < 0:
            problems.append(f"prior_strength must be >= 0, got {self.prior_strength}")
        if self.min_support_customers < 0:
            problems.append(f"min_support_customers must be >= 0, got {self.min_support_customers}")
        if not 0 < self.premium_top_share < 1:
            problems.append(
                f"premium_top_share must be between 0 and 1, got {self.premium_top_share}"
            )
        if self.top_n < 1:
            problems.append(f"top_n must be >= 1, got {self.top_n}")
        unknown = [s for s in self.top5_segments if s not in SEGMENT_NAMES]
        if unknown:
            problems.append(f"top5_segments has unknown segment names {unknown}")
        if problems:
            raise ValueError("Invalid rfm_settings:\n" + "\n".join(f"  - {p}" for p in problems))
        return load_segment_map(self.segment_map_path)

    def segment_map(self) -> SegmentMap:
        """The validated segment map; any invalid setting is a `dg.Failure` whose description
        is the validator's full message.

        Every asset of this layer calls this first, before opening the warehouse. (Validating
        in `setup_for_execution` instead would fail the run with a resource-initialisation
        stack trace rather than a step failure the CLI and the UI show as a message.)"""
        try:
            return self.check_settings()
        except ValueError as exc:  # SegmentMapError is a ValueError
            raise dg.Failure(description=str(exc)) from None

    def _date(self, name: str) -> date | None:
        value = getattr(self, name)
        return date.fromisoformat(value) if value else None

    def resolve_window(self, conn: duckdb.DuckDBPyConnection) -> RfmWindow:
        try:
            return resolve_window(
                conn,
                window_start=self._date("window_start"),
                window_end=self._date("window_end"),
                as_of=self._date("as_of"),
                lookback_days=self.lookback_days,
            )
        except RfmWindowError as exc:
            raise dg.Failure(description=f"RFM window: {exc}") from None


def window_metadata(window: RfmWindow) -> dict[str, str]:
    """The RFM window as asset metadata (`window`, `as_of`)."""
    return {"window": f"{window.start} .. {window.end}", "as_of": window.as_of.isoformat()}
