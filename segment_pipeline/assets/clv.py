"""Customer lifetime value (issue 13): BG/NBD x Gamma-Gamma per customer and per segment.

Lineage: marts.rfm_customer_segments (its window and as_of) + staging.sales_lines ->
marts.clv_model_inputs -> marts.clv_model_fit -> marts.clv_customer_predictions ->
marts.clv_by_segment (with the RFM, behavioural and strategy tables) -> figures/clv_by_segment;
marts.clv_calibration_holdout (fit on the first two thirds, checked on the last third) ->
figures/clv_calibration_holdout. The models and SQL live in `segment_pipeline.logic.clv`,
the plots in `.clv_figures`; parameters are the `clv_settings` resource (ClvSettings).
"""

import time
from collections.abc import Callable
from datetime import date

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from segment_pipeline.assets.behaviour import (
    CUSTOMER_KEY,
    STRATEGY_KEY,
    SUMMARY_KEY,
    BehaviourSettings,
)
from segment_pipeline.assets.behaviour import RESOURCE_KEY as BEHAVIOUR_RESOURCE_KEY
from segment_pipeline.assets.ingest import STAGING_KEYS
from segment_pipeline.assets.layer import LayerContext
from segment_pipeline.assets.rfm import RFM_KEY, window_metadata
from segment_pipeline.assets.tables import ANALYTICS_OWNERS, check_spec, table_asset, table_key
from segment_pipeline.drawing import PlotFunctions
from segment_pipeline.figures import FigureContext, FigureLayer, FigureSpec, PlotCall
from segment_pipeline.logic import clv
from segment_pipeline.logic import figure_names as names
from segment_pipeline.logic.palette import class_colour
from segment_pipeline.logic.rfm import RfmWindow, RfmWindowError, read_window
from segment_pipeline.resources import DuckDBWarehouse
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import (
    TableDef,
    ensure_table,
    preview_markdown,
    read_table,
    replace_rows,
    replace_rows_from_frame,
    row_count,
    scalar,
    table_exists,
    table_metadata,
)

#: The plotting functions by name (drawing.PlotFunction): imported where the figures are
#: drawn (the drawing server), not by loading the definitions.
figs = PlotFunctions("segment_pipeline.logic.clv_figures")

GROUP = "clv"
RESOURCE_KEY = "clv_settings"


INPUTS_KEY = table_key(clv.CLV_MODEL_INPUTS)
FIT_KEY = table_key(clv.CLV_MODEL_FIT)
HOLDOUT_KEY = table_key(clv.CLV_CALIBRATION_HOLDOUT)
PREDICTIONS_KEY = table_key(clv.CLV_CUSTOMER_PREDICTIONS)
BY_SEGMENT_KEY = table_key(clv.CLV_BY_SEGMENT)
FIGURE_STEMS = {"by_segment": names.CLV_BY_SEGMENT, "holdout": names.CLV_CALIBRATION_HOLDOUT}
FIGURE_KEYS = {k: dg.AssetKey(["figures", stem]) for k, stem in FIGURE_STEMS.items()}

#: Customers of clv_model_inputs with a repeat purchase day.
REPEAT_CUSTOMERS_SQL = load_sql("clv/repeat_customers")
#: Check of clv_by_segment, per dimension: customers and CLV against clv_customer_predictions.
BY_SEGMENT_GAPS_SQL = load_sql("clv/by_segment_gaps")


class ClvSettings(dg.ConfigurableResource):
    """Parameters of the CLV layer; the defaults work on the bundled sample. Override them in
    the run config (`resources: {clv_settings: {config: {...}}}`) or the UI launchpad."""

    horizon_months: int = Field(
        default=12, description="Months ahead for expected purchases and CLV"
    )
    monthly_discount_rate: float = Field(
        default=clv.DEFAULT_MONTHLY_DISCOUNT_RATE,
        description="Discount rate per month (default 0.797% = 10% a year)",
    )
    calibration_end: str | None = Field(
        default=None,
        description="Last day of the calibration period, YYYY-MM-DD (default: window_end minus "
        "a third of the history); the days after it up to window_end are the holdout",
    )
    min_customers: int = Field(
        default=30,
        description="Fewest customers to fit BG/NBD on (and repeat customers for Gamma-Gamma)",
    )

    def checked(self) -> "ClvSettings":
        """Self, after checking every field; a `dg.Failure` listing the problems otherwise."""
        problems = []
        if not 1 <= self.horizon_months <= 600:
            problems.append(f"horizon_months must be 1..600, got {self.horizon_months}")
        if not 0 <= self.monthly_discount_rate < 1:
            problems.append(
                f"monthly_discount_rate must be in [0, 1), got {self.monthly_discount_rate}"
            )
        if self.min_customers < 1:
            problems.append(f"min_customers must be >= 1, got {self.min_customers}")
        try:
            self.calibration_date()
        except ValueError:
            problems.append(f"calibration_end must be YYYY-MM-DD, got {self.calibration_end!r}")
        if problems:
            raise dg.Failure(
                description="Invalid clv_settings:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return self

    def calibration_date(self) -> date | None:
        return date.fromisoformat(self.calibration_end) if self.calibration_end else None


def _window(conn: duckdb.DuckDBPyConnection) -> RfmWindow:
    try:
        return read_window(conn)
    except (RfmWindowError, duckdb.CatalogException) as exc:
        raise dg.Failure(description=f"CLV needs marts.rfm_customer_segments: {exc}") from None


def _empty(conn: duckdb.DuckDBPyConnection, table: TableDef) -> None:
    """Leave `table` with its columns and no rows."""
    ensure_table(conn, table)
    conn.execute(f"DELETE FROM {table.fqn}")


# --------------------------------------------------------------------------------------------
# Inputs, fit, calibration / holdout
# --------------------------------------------------------------------------------------------


@table_asset(
    clv.CLV_MODEL_INPUTS,
    group=GROUP,
    deps=[RFM_KEY, *STAGING_KEYS],
    description="BTYD model inputs per customer of the RFM window (same window and as_of as RFM), "
    "in DuckDB SQL: frequency = repeat purchase days, recency = first to last purchase day, T = "
    "first purchase day to window_end, monetary = mean spend of the repeat purchase days.",
    checks=[
        check_spec(
            INPUTS_KEY,
            "inputs_cover_rfm_customers",
            "One row per customer of marts.rfm_customer_segments, with 0 <= recency <= T and "
            "frequency 0 exactly when recency and monetary are 0.",
        ),
    ],
)
def clv_model_inputs(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        window = _window(conn)
        rows = replace_rows(
            conn, clv.CLV_MODEL_INPUTS, clv.CLV_MODEL_INPUTS_SQL, window.sql_params()
        )
        stats = conn.execute(clv.INPUTS_CONSISTENCY_SQL).df().iloc[0]
        repeaters = scalar(conn, REPEAT_CUSTOMERS_SQL)
        metadata = table_metadata(conn, clv.CLV_MODEL_INPUTS, order_by="customer_id")
    rfm, stored, distinct, bad = (
        int(stats[c]) for c in ("rfm_customers", "rows", "distinct_customers", "bad_rows")
    )
    context.log.info(f"{rows} customers, {repeaters} with a repeat purchase day")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **window_metadata(window),
            "repeat_customers": int(repeaters),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="inputs_cover_rfm_customers",
                passed=rfm == stored == distinct and bad == 0,
                metadata={"rfm_customers": rfm, "rows": stored, "distinct": distinct, "bad": bad},
            )
        ],
    )


def _fit_metadata(fit: clv.FitResult, seconds: float | None = None) -> dict[str, object]:
    prefix = fit.model
    timing = {} if seconds is None else {f"{prefix}_fit_seconds": round(seconds, 4)}
    return {
        **{f"{prefix}_{k}": round(float(v), 6) for k, v in vars(fit.params).items()},
        f"{prefix}_log_likelihood": round(fit.log_likelihood, 4),
        f"{prefix}_n_customers": fit.n_customers,
        f"{prefix}_converged": fit.converged,
        f"{prefix}_optimizer_message": fit.message,
        **timing,
    }


def _outcome_metadata(outcome: clv.ModelOutcome, seconds: float) -> dict[str, object]:
    fitted = {f"{outcome.model}_fitted": outcome.fitted}
    if outcome.fit is None:
        return {**fitted, f"{outcome.model}_not_fitted_reason": outcome.reason}
    reason = {} if outcome.fitted else {f"{outcome.model}_not_fitted_reason": outcome.reason}
    return {**fitted, **reason, **_fit_metadata(outcome.fit, seconds)}


def _timed(fit: Callable[[], clv.ModelOutcome]) -> tuple[clv.ModelOutcome, float]:
    started = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - started


def _fit_diagnostics(
    conn: duckdb.DuckDBPyConnection,
    triples: pd.DataFrame,
    bgnbd: clv.BgNbdParams | None,
) -> dict[str, object]:
    """In-sample checks: repeat purchases the model expects over each customer's T vs the
    actual ones (`triples`: BGNBD_FIT_INPUTS_SQL's rows), customers with a repeat but no
    positive mean spend, and the frequency-spend correlation Gamma-Gamma assumes to be ~0."""
    stats = conn.execute(clv.FIT_DIAGNOSTICS_SQL).fetchall()[0]
    out: dict[str, object] = {
        "repeat_purchases_actual": int(stats[0]),
        "non_positive_repeat_spend_customers": int(stats[1]),
    }
    if bgnbd is not None:
        expected = clv.expected_purchases_unconditional(bgnbd, triples["T"].to_numpy(float))
        out["repeat_purchases_expected"] = round(
            float(np.sum(triples["customers"].to_numpy(float) * expected)), 2
        )
    if stats[2] is not None:
        out["frequency_monetary_correlation"] = round(float(stats[2]), 4)
    return out


@table_asset(
    clv.CLV_MODEL_FIT,
    group=GROUP,
    deps=[INPUTS_KEY],
    description="Maximum-likelihood BG/NBD (purchase days; time in days) on every customer and "
    "Gamma-Gamma (spend per purchase day) on the repeat customers, by scipy.optimize. "
    "Parameters, log-likelihood, convergence and in-sample diagnostics in the metadata. A "
    "model that cannot be fitted (too little data, a degenerate optimum) is flagged "
    "fitted = false with the reason; the layer then predicts less or nothing, and says why.",
    checks=[
        check_spec(
            FIT_KEY,
            "parameters_usable",
            "Every parameter of a model flagged fitted is finite and > 0, BG/NBD a != 1 and "
            "Gamma-Gamma q > 1 (finite mean); passes vacuously for models not fitted.",
        ),
        check_spec(
            FIT_KEY,
            "models_fitted",
            "Both models were fitted (a warning: the reason is in the metadata).",
            blocking=False,
        ),
        check_spec(
            FIT_KEY, "models_converged", "The fitted models' optimizers converged.", blocking=False
        ),
    ],
    kinds=("duckdb", "scipy"),
)
def clv_model_fit(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, clv_settings: ClvSettings
) -> dg.MaterializeResult:
    settings = clv_settings.checked()
    minimum, horizon_days = settings.min_customers, settings.horizon_months * clv.DAYS_PER_MONTH
    with warehouse.connect() as conn:
        # grouped and filtered in DuckDB: every customer's four numbers as pandas took this
        # step to 950 MB of RSS at 100M lines (5.4M customers), and the process kept much of it
        triples = conn.execute(clv.BGNBD_FIT_INPUTS_SQL).df()
        window = _window(conn)
        x, t_x, T, w = (
            triples[c].to_numpy(float) for c in ("frequency", "recency", "T", "customers")
        )
        bgnbd, bg_seconds = _timed(
            lambda: clv.attempt_fit(
                clv.BGNBD,
                lambda: clv.fit_bgnbd(x, t_x, T, minimum, customers=w),
                lambda f: clv.bgnbd_prediction_problems(f.params, x, t_x, T, horizon_days, w),
            )
        )
        repeat = conn.execute(clv.GAMMA_GAMMA_FIT_INPUTS_SQL).fetchnumpy()
        repeat_x, repeat_m = (np.asarray(repeat[c], dtype=float) for c in ("frequency", "monetary"))
        gg, gg_seconds = _timed(
            lambda: clv.attempt_fit(
                clv.GAMMA_GAMMA, lambda: clv.fit_gamma_gamma(repeat_x, repeat_m, minimum)
            )
        )
        rows = pd.DataFrame([*bgnbd.rows(), *gg.rows()])
        rows["window_start"], rows["window_end"] = window.start, window.end
        replace_rows_from_frame(conn, clv.CLV_MODEL_FIT, rows)
        metadata = table_metadata(conn, clv.CLV_MODEL_FIT, order_by="model, parameter")
        bg_params = bgnbd.fit.params if bgnbd.fitted else None
        diagnostics = _fit_diagnostics(conn, triples, bg_params)
    outcomes = (bgnbd, gg)
    reasons = {o.model: o.reason for o in outcomes if not o.fitted}
    for model, reason in reasons.items():
        context.log.warning(f"{clv.MODEL_LABELS[model]} not fitted. {reason}")
    fitted = [o for o in outcomes if o.fitted]
    problems = [p for o in fitted for p in clv.usable_problems(o.fit)]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **_outcome_metadata(bgnbd, bg_seconds),
            **_outcome_metadata(gg, gg_seconds),
            **diagnostics,
            "time_unit": "day",
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="parameters_usable",
                passed=not problems,
                metadata={
                    "problems": "; ".join(problems) or "(none)",
                    "checked_models": ", ".join(o.model for o in fitted)
                    or "(none fitted: passes vacuously)",
                },
            ),
            dg.AssetCheckResult(
                check_name="models_fitted",
                passed=not reasons,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    f"{o.model}": "fitted" if o.fitted else f"not fitted: {o.reason}"
                    for o in outcomes
                },
            ),
            dg.AssetCheckResult(
                check_name="models_converged",
                passed=all(o.fit.converged for o in fitted),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={o.model: o.fit.message if o.fitted else "(not fitted)" for o in outcomes},
            ),
        ],
    )


def _calibration_frame(
    conn: duckdb.DuckDBPyConnection, window: RfmWindow, end: date, minimum: int, horizon: float
) -> tuple[pd.DataFrame, clv.FitResult]:
    """Holdout comparison rows and the calibration fit (ClvFitError when it cannot fit or its
    predictions would not be valid numbers)."""
    calibration = conn.execute(
        clv.CALIBRATION_HOLDOUT_SQL,
        {"period_start": window.start, "calibration_end": end, "holdout_end": window.end},
    ).df()
    x, t_x, T, w = (
        calibration[c].to_numpy(float) for c in ("frequency", "recency", "T", "customers")
    )
    outcome = clv.attempt_fit(
        clv.BGNBD,
        lambda: clv.fit_bgnbd(x, t_x, T, minimum, customers=w),
        lambda f: clv.bgnbd_prediction_problems(f.params, x, t_x, T, horizon, w),
    )
    if not outcome.fitted:
        raise clv.ClvFitError(outcome.reason)
    days = (window.end - end).days
    frame = clv.holdout_comparison(calibration, None, outcome.fit.params, days)
    frame["calibration_start"], frame["calibration_end"] = window.start, end
    frame["holdout_end"], frame["holdout_days"] = window.end, days
    return frame, outcome.fit


@table_asset(
    clv.CLV_CALIBRATION_HOLDOUT,
    group=GROUP,
    deps=[RFM_KEY, *STAGING_KEYS],
    description="BG/NBD fitted on the calibration period only (default: the first two thirds of "
    "the RFM window), its predicted purchase days in the holdout (the last third) vs the actual "
    "ones, per calibration-frequency group 0..6, 7+. Empty, with the reason in the metadata, when "
    "the history is too short or the calibration data cannot be fitted.",
    kinds=("duckdb", "scipy"),
)
def clv_calibration_holdout(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, clv_settings: ClvSettings
) -> dg.MaterializeResult:
    settings = clv_settings.checked()
    with warehouse.connect() as conn:
        window = _window(conn)
        end = settings.calibration_date() or clv.default_calibration_end(window.start, window.end)
        reason = clv.calibration_skip_reason(window.start, window.end, end)
        frame, extra = pd.DataFrame(columns=clv.CLV_CALIBRATION_HOLDOUT.column_names), {}
        if reason is None:
            try:
                frame, fit = _calibration_frame(
                    conn, window, end, settings.min_customers, float((window.end - end).days)
                )
                extra = _fit_metadata(fit)
            except clv.ClvFitError as exc:
                reason = f"calibration fit not possible: {exc}"
        if reason is None:
            replace_rows_from_frame(conn, clv.CLV_CALIBRATION_HOLDOUT, frame)
        else:
            _empty(conn, clv.CLV_CALIBRATION_HOLDOUT)
        metadata = table_metadata(conn, clv.CLV_CALIBRATION_HOLDOUT, order_by="group_order")
    if reason:
        context.log.warning(f"calibration / holdout comparison skipped: {reason}")
    totals = {
        "actual_holdout_purchases": round(float(frame["actual_total"].sum()), 2),
        "predicted_holdout_purchases": round(float(frame["predicted_total"].sum()), 2),
    }
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **extra,
            **(totals if reason is None else {}),
            "calibration_end": end.isoformat(),
            "skipped": reason or "(not skipped)",
        }
    )


# --------------------------------------------------------------------------------------------
# Predictions and value by segment
# --------------------------------------------------------------------------------------------


@table_asset(
    clv.CLV_CUSTOMER_PREDICTIONS,
    group=GROUP,
    deps=[FIT_KEY, INPUTS_KEY],
    description="Per customer: P(alive) at window_end, expected purchase days over the horizon "
    "(BG/NBD), expected spend per purchase day (Gamma-Gamma; the customer's own mean when "
    "Gamma-Gamma is not fitted) and CLV = sum over months of expected purchases in the month x "
    "expected spend, discounted monthly. No rows, with the reason, when BG/NBD is not fitted.",
    checks=[
        check_spec(PREDICTIONS_KEY, "p_alive_in_unit_interval", "Every P(alive) is in [0, 1]."),
        check_spec(
            PREDICTIONS_KEY,
            "predictions_cover_every_customer",
            "One row per row of clv_model_inputs (none when BG/NBD is not fitted); no missing, "
            "NaN or negative prediction.",
        ),
    ],
    kinds=("duckdb", "scipy"),
)
def clv_customer_predictions(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse, clv_settings: ClvSettings
) -> dg.MaterializeResult:
    settings = clv_settings.checked()
    with warehouse.connect() as conn:
        models = clv.models_from_fit(read_table(conn, clv.CLV_MODEL_FIT))
        if models.bgnbd is None:
            _empty(conn, clv.CLV_CUSTOMER_PREDICTIONS)
        else:
            clv.write_predictions(
                conn,
                models.bgnbd,
                models.gamma_gamma,
                settings.horizon_months,
                settings.monthly_discount_rate,
            )
        # over the stored rows, in DuckDB: 5.4M customers' predictions (100M lines) held as
        # pandas frames took the process to 2.9 GB
        stats = conn.execute(clv.PREDICTIONS_STATS_SQL).df().iloc[0]
        metadata = table_metadata(conn, clv.CLV_CUSTOMER_PREDICTIONS, order_by="clv DESC")
    notes = dict(models.reasons)  # each reason names its model
    rows, inputs = int(stats["rows"]), int(stats["inputs"])
    in_unit, complete = bool(stats["p_alive_in_unit"]), bool(stats["complete"])
    if models.bgnbd is None:
        reason = notes[clv.BGNBD]
        covered, vacuous = rows == 0, {"vacuous": f"no predictions: {reason}"}
        context.log.warning(f"no CLV predictions: {reason}")
        summary: dict[str, object] = {"not_predicted": reason}
    else:
        covered = rows == inputs == int(stats["customers"])
        vacuous = {}
        summary = {
            "total_clv": round(float(stats["total_clv"]), 2) if rows else 0.0,
            "mean_clv": round(float(stats["mean_clv"]), 4) if rows else 0.0,
            "mean_p_alive": round(float(stats["mean_p_alive"]), 4) if rows else 0.0,
            "expected_purchases": round(float(stats["expected_purchases"]), 2) if rows else 0.0,
            "spend_basis": str(stats["spend_basis"]) if rows else "(none)",
            "non_positive_repeat_spend_customers": int(stats["non_positive_repeat_spend"]),
        }
        context.log.info(
            f"total CLV {summary['total_clv']:,.2f} over {settings.horizon_months} months"
        )
    if models.gamma_gamma is None and models.bgnbd is not None:
        summary["spend_note"] = (
            f"{notes[clv.GAMMA_GAMMA]}; expected_spend = the customer's own mean spend per "
            "purchase day in the window (spend_basis = own_mean)"
        )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            **summary,
            "horizon_months": settings.horizon_months,
            "monthly_discount_rate": settings.monthly_discount_rate,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="p_alive_in_unit_interval",
                passed=in_unit,
                metadata={
                    **vacuous,
                    "min": float(stats["min_p_alive"]) if rows else 0.0,
                    "max": float(stats["max_p_alive"]) if rows else 0.0,
                },
            ),
            dg.AssetCheckResult(
                check_name="predictions_cover_every_customer",
                passed=bool(covered and complete),
                metadata={
                    **vacuous,
                    "rows": rows,
                    "inputs": inputs,
                    "complete": complete,
                },
            ),
        ],
    )


@table_asset(
    clv.CLV_BY_SEGMENT,
    group=GROUP,
    deps=[PREDICTIONS_KEY, RFM_KEY, CUSTOMER_KEY, STRATEGY_KEY, SUMMARY_KEY],
    description="Predicted value by RFM segment, behavioural segment and strategy class (column "
    "dimension): customers, total / mean / median CLV, CLV share, mean P(alive), expected "
    "purchase days and historic spend. Customers missing from a segment table are Unassigned. "
    "Empty when there are no predictions.",
    checks=[
        check_spec(
            BY_SEGMENT_KEY,
            "totals_match_predictions",
            "In every dimension, customers and CLV add up to clv_customer_predictions (no rows "
            "at all when there are no predictions).",
        ),
    ],
)
def clv_by_segment(
    context: AssetExecutionContext, warehouse: DuckDBWarehouse
) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        replace_rows(conn, clv.CLV_BY_SEGMENT, clv.CLV_BY_SEGMENT_SQL)
        predictions = row_count(conn, clv.CLV_CUSTOMER_PREDICTIONS)
        gaps = conn.execute(BY_SEGMENT_GAPS_SQL).df()
        metadata = table_metadata(
            conn, clv.CLV_BY_SEGMENT, order_by="dimension, segment_order, segment", preview_rows=30
        )
    extra: dict[str, object] = {}
    if predictions:
        # float sums in another order: relative to the total (48 M at 745k lines -> 5e-2)
        tolerance = 1e-6 + 1e-9 * float(gaps["clv_total"].abs().max())
        passed = len(gaps) == 3 and bool(
            ((gaps["customer_gap"] == 0) & (gaps["clv_gap"] <= tolerance)).all()
        )
    else:
        passed = gaps.empty
        extra["vacuous"] = "no predictions (see marts/clv_customer_predictions): no rows"
        context.log.warning("clv_by_segment: no predictions, the table is empty")
    context.log.info(f"clv_by_segment: {gaps.to_dict('records')}")
    return dg.MaterializeResult(
        metadata={**metadata, **extra},
        check_results=[
            dg.AssetCheckResult(
                check_name="totals_match_predictions",
                passed=passed,
                metadata={**extra, "per_dimension": preview_markdown(gaps)},
            )
        ],
    )


# --------------------------------------------------------------------------------------------
# Figures (closures over the figures folder)
# --------------------------------------------------------------------------------------------


def _not_predicted_reason(conn: duckdb.DuckDBPyConnection) -> str:
    """Why there are no CLV predictions, from marts.clv_model_fit."""
    # Looked up, not tried: a failed query would abort the run's transaction.
    if not table_exists(conn, clv.CLV_MODEL_FIT):
        return "marts.clv_model_fit is missing; materialize the clv group"
    try:
        models = clv.models_from_fit(read_table(conn, clv.CLV_MODEL_FIT))
    except KeyError:
        return "marts.clv_model_fit is missing; materialize the clv group"
    if clv.BGNBD in models.reasons:
        return models.reasons[clv.BGNBD]
    return "no customers in the RFM window"


def _by_segment_plot(
    conn: duckdb.DuckDBPyConnection, settings: BehaviourSettings, context: FigureContext
) -> PlotCall:
    table = settings.rule_table()
    colours = {c.name: class_colour(c.colour) for c in table.classes}
    horizon = scalar(conn, clv.PREDICTION_HORIZON_SQL)
    by_segment = read_table(conn, clv.CLV_BY_SEGMENT)
    unavailable = _not_predicted_reason(conn) if by_segment.empty else None
    return PlotCall(figs.plot_clv_by_segment, (by_segment, colours, int(horizon or 0), unavailable))


def _holdout_skip_reason(context: FigureContext) -> str | None:
    """The `skipped` metadata of the latest materialization of the holdout table."""
    event = context.instance.get_latest_materialization_event(HOLDOUT_KEY)
    materialization = event.asset_materialization if event is not None else None
    value = materialization.metadata.get("skipped") if materialization is not None else None
    text = getattr(value, "value", value)
    return str(text) if text and text != "(not skipped)" else None


def _holdout_plot(
    conn: duckdb.DuckDBPyConnection, settings: BehaviourSettings, context: FigureContext
) -> PlotCall:
    holdout = read_table(conn, clv.CLV_CALIBRATION_HOLDOUT)
    reason = _holdout_skip_reason(context) if holdout.empty else None
    return PlotCall(figs.plot_calibration_holdout, (holdout, reason))


#: The two CLV figures (drawn with the behaviour layer's strategy colours).
FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        FIGURE_STEMS["by_segment"],
        (BY_SEGMENT_KEY,),
        "Predicted CLV by RFM segment, strategy class and top behavioural segments.",
        _by_segment_plot,
    ),
    FigureSpec(
        FIGURE_STEMS["holdout"],
        (HOLDOUT_KEY,),
        "BG/NBD calibration / holdout check: mean predicted vs actual holdout purchase "
        "days per calibration-frequency group.",
        _holdout_plot,
    ),
)


#: Drawn by the one figures step (segment_pipeline.figures.figure_assets, definitions.py).
FIGURE_LAYER = FigureLayer(BEHAVIOUR_RESOURCE_KEY, FIGURES, ANALYTICS_OWNERS)


TABLE_ASSETS = [
    clv_model_inputs,
    clv_model_fit,
    clv_calibration_holdout,
    clv_customer_predictions,
    clv_by_segment,
]


RESOURCES = {RESOURCE_KEY: ClvSettings()}


def build_assets(layer: LayerContext) -> list[dg.AssetsDefinition]:
    """The CLV tables with their checks (see assets/layer.py)."""
    return list(TABLE_ASSETS)
