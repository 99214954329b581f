"""Customer lifetime value: BG/NBD (how many purchases) x Gamma-Gamma (how much per purchase).

Why these models: both are the standard "buy till you die" pair for non-contractual retail
(Fader, Hardie & Lee 2005, "Counting your customers the easy way"; Fader & Hardie 2013, "The
Gamma-Gamma model of monetary value"). They need only four numbers per customer, are fitted by
maximum likelihood in well under a second, and their published CDNOW estimates let the tests
check this implementation against the literature (docs/clv.md has the numbers).

Model inputs, per customer, in the BTYD convention (one "purchase" = one purchase *day*: two
orders on the same day count once, as in `lifetimes.utils.summary_data_from_transaction_data`):

- **frequency** = distinct purchase days - 1 (repeat purchases);
- **recency** = days between the first and the last purchase day (0 without a repeat);
- **T** = days between the first purchase and the end of the observation period. The period
  ends on the window's last day (`window_end` = the day before RFM's as_of by default), so a
  customer who bought on the last day has recency = T;
- **monetary** = mean spend of the repeat purchase days (the first day excluded; 0 without a
  repeat). Gamma-Gamma is fitted on customers with frequency > 0 and monetary > 0.

Predictions (all conditional on the customer's own history): P(alive), expected purchases in
the next `horizon` months, expected spend per purchase, and CLV = sum over months m of expected
purchases in month m x expected spend / (1 + monthly discount)^m. A month is 365.25 / 12 days.

Everything here is pure: SQL constants take named parameters, functions take numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

# Importing the modules that declare the tables and views these SQL files read registers
# the names their placeholders resolve against (segment_pipeline.sql_files).
from segment_pipeline.logic.behaviour import CUSTOMER_BEHAVIOUR  # noqa: F401
from segment_pipeline.logic.rfm import RFM_CUSTOMER_SEGMENTS  # noqa: F401
from segment_pipeline.logic.strategy import SEGMENT_STRATEGY, STRATEGY_SUMMARY  # noqa: F401
from segment_pipeline.sql_files import load_sql
from segment_pipeline.tables import Column, TableDef, ensure_table, replace_rows_from_frame


class _ImportedOnUse:
    """A module imported at its first attribute access. scipy costs about 0.6 s to import,
    and loading the definitions (every CLI run, the UI, every launched run) must not pay for
    it when no CLV model is fitted."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> object:
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


optimize = _ImportedOnUse("scipy.optimize")
special = _ImportedOnUse("scipy.special")

DAYS_PER_MONTH = 365.25 / 12
#: 10 % a year, as a monthly rate: (1.10)^(1/12) - 1.
DEFAULT_MONTHLY_DISCOUNT_RATE = round(1.10 ** (1 / 12) - 1, 6)
#: Calibration-frequency groups 0, 1, ..., 6 and "7+" (the holdout comparison of FHL 2005).
FREQUENCY_GROUP_CAP = 7
#: A holdout shorter than this says too little to compare (the comparison is skipped).
MIN_HOLDOUT_DAYS = 14
BGNBD = "bgnbd"
GAMMA_GAMMA = "gamma_gamma"


class ClvFitError(ValueError):
    """Too little data to fit a model (or a fit whose parameters cannot be used)."""


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

_WINDOW_COLUMNS = (
    Column("as_of", "DATE", "RFM's reference date (the day after the window)", nullable=False),
    Column("window_start", "DATE", "First purchase day counted", nullable=False),
    Column("window_end", "DATE", "Last purchase day counted (end of T)", nullable=False),
)

CLV_MODEL_INPUTS = TableDef(
    schema="marts",
    name="clv_model_inputs",
    description="One row per customer of the RFM window: BTYD inputs (repeat purchase days, "
    "recency, T, mean repeat spend), in days.",
    columns=(
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("first_purchase_date", "DATE", "First purchase day in the window", nullable=False),
        Column("last_purchase_date", "DATE", "Last purchase day in the window", nullable=False),
        Column("purchase_days", "BIGINT", "Distinct purchase days", nullable=False),
        Column("frequency", "BIGINT", "Repeat purchase days = purchase_days - 1", nullable=False),
        Column("recency", "DOUBLE", "Days from first to last purchase day", nullable=False),
        Column("T", "DOUBLE", "Days from first purchase day to window_end", nullable=False),
        Column("monetary", "DOUBLE", "Mean spend per repeat purchase day (0: no repeat)"),
        Column("total_spend", "DOUBLE", "Spend over all purchase days in the window"),
        *_WINDOW_COLUMNS,
    ),
    primary_key=("customer_id",),
)

#: What BG/NBD is fitted on: its likelihood depends on (frequency, recency, T) alone, so the
#: customers sharing a triple are one row weighted by how many they are (in whole days 647k
#: triples for 5.4M customers at 100M lines). Grouped here rather than in numpy: the four
#: columns per customer as pandas took the step to 950 MB of RSS at that size.
BGNBD_FIT_INPUTS_SQL = f"""
SELECT frequency, recency, "T", count(*) AS customers
FROM {CLV_MODEL_INPUTS.fqn}
GROUP BY frequency, recency, "T"
ORDER BY frequency, recency, "T"
"""

#: What Gamma-Gamma is fitted on (the rows gamma_gamma_sample keeps), in the table's order.
GAMMA_GAMMA_FIT_INPUTS_SQL = f"""
SELECT frequency, monetary
FROM {CLV_MODEL_INPUTS.fqn}
WHERE frequency > 0 AND monetary > 0 AND isfinite(monetary)
"""

#: The fit's in-sample diagnostics that need every customer: repeat purchase days, customers
#: with a repeat but no positive mean spend, and the frequency-spend correlation Gamma-Gamma
#: assumes to be about 0 (NULL unless more than two such customers vary in both).
FIT_DIAGNOSTICS_SQL = f"""
SELECT
    coalesce(sum(frequency), 0) AS repeat_purchases_actual,
    count(*) FILTER (WHERE frequency > 0 AND NOT coalesce(monetary > 0, false))
        AS non_positive_repeat_spend_customers,
    CASE
        WHEN count(*) FILTER (WHERE frequency > 0 AND monetary > 0) > 2
            AND count(DISTINCT frequency) FILTER (WHERE frequency > 0 AND monetary > 0) > 1
            AND count(DISTINCT monetary) FILTER (WHERE frequency > 0 AND monetary > 0) > 1
        THEN corr(frequency, monetary) FILTER (WHERE frequency > 0 AND monetary > 0)
    END AS frequency_monetary_correlation
FROM {CLV_MODEL_INPUTS.fqn}
"""

CLV_MODEL_FIT = TableDef(
    schema="marts",
    name="clv_model_fit",
    description="Maximum-likelihood parameters of BG/NBD and Gamma-Gamma (time unit: days), "
    "one row per model x parameter, with the fit's log-likelihood and convergence.",
    columns=(
        Column("model", "VARCHAR", "bgnbd or gamma_gamma", nullable=False),
        Column("parameter", "VARCHAR", "r, alpha, a, b (BG/NBD); p, q, gamma (Gamma-Gamma)"),
        Column("value", "DOUBLE", "Estimate (alpha and gamma in days / currency units)"),
        Column("log_likelihood", "DOUBLE", "Maximised log-likelihood of the model"),
        Column("n_customers", "BIGINT", "Customers the model was fitted on"),
        Column("converged", "BOOLEAN", "The optimizer reported success"),
        Column("optimizer_message", "VARCHAR", "The optimizer's message"),
        Column("iterations", "BIGINT", "Optimizer iterations"),
        Column(
            "fitted",
            "BOOLEAN",
            "The parameters are usable and used for predictions",
            nullable=False,
        ),
        Column("not_fitted_reason", "VARCHAR", "Why the model was not fitted (NULL: fitted)"),
        Column("window_start", "DATE", "First purchase day of the fitting data"),
        Column("window_end", "DATE", "Last purchase day of the fitting data"),
    ),
    primary_key=("model", "parameter"),
)

CLV_CALIBRATION_HOLDOUT = TableDef(
    schema="marts",
    name="clv_calibration_holdout",
    description="BG/NBD fitted on the calibration period, predicted vs actual purchase days "
    "in the holdout, per calibration-frequency group (0..6, 7+). Empty when skipped.",
    columns=(
        Column("frequency_group", "VARCHAR", "Repeat purchase days in calibration (7+ capped)"),
        Column("group_order", "INTEGER", "Sort order of the group (0..7)"),
        Column("customers", "BIGINT", "Customers in the group"),
        Column("actual_purchases", "DOUBLE", "Mean actual purchase days in the holdout"),
        Column("predicted_purchases", "DOUBLE", "Mean predicted purchases in the holdout"),
        Column("actual_total", "DOUBLE", "Total actual purchase days in the holdout"),
        Column("predicted_total", "DOUBLE", "Total predicted purchases in the holdout"),
        Column("calibration_start", "DATE", "First day of the calibration period"),
        Column("calibration_end", "DATE", "Last day of the calibration period"),
        Column("holdout_end", "DATE", "Last day of the holdout (= window_end)"),
        Column("holdout_days", "INTEGER", "Length of the holdout in days"),
    ),
    primary_key=("frequency_group",),
)

CLV_CUSTOMER_PREDICTIONS = TableDef(
    schema="marts",
    name="clv_customer_predictions",
    description="One row per customer: P(alive), expected purchases and spend per purchase, "
    "and the discounted CLV over the horizon.",
    columns=(
        Column("customer_id", "VARCHAR", "Customer id", nullable=False),
        Column("frequency", "BIGINT", "Repeat purchase days (model input)"),
        Column("recency", "DOUBLE", "Days from first to last purchase day (model input)"),
        Column("T", "DOUBLE", "Days observed (model input)"),
        Column("monetary", "DOUBLE", "Mean repeat spend (model input)"),
        Column("p_alive", "DOUBLE", "P(customer still active at window_end), BG/NBD"),
        Column("expected_purchases", "DOUBLE", "Expected purchase days over the horizon"),
        Column("expected_spend", "DOUBLE", "Expected spend per purchase day, Gamma-Gamma"),
        Column("clv", "DOUBLE", "Discounted expected spend over the horizon"),
        Column(
            "spend_basis",
            "VARCHAR",
            "gamma_gamma, or own_mean (no Gamma-Gamma fit: own mean spend per purchase day)",
        ),
        Column("horizon_months", "INTEGER", "Horizon of expected_purchases and clv"),
        Column("monthly_discount_rate", "DOUBLE", "Discount rate per month"),
        Column("as_of", "DATE", "RFM's reference date"),
    ),
    primary_key=("customer_id",),
)

CLV_BY_SEGMENT = TableDef(
    schema="marts",
    name="clv_by_segment",
    description="Predicted value per RFM segment, behavioural segment and strategy class: "
    "customers, total / mean / median CLV, CLV share, P(alive), expected purchases.",
    columns=(
        Column("dimension", "VARCHAR", "rfm_segment, behavioural_segment or strategy_class"),
        Column("segment", "VARCHAR", "The segment or class (Unassigned: not in that table)"),
        Column("segment_order", "INTEGER", "Display order within the dimension"),
        Column("customers", "BIGINT", "Customers with a prediction"),
        Column("total_clv", "DOUBLE", "Sum of CLV"),
        Column("mean_clv", "DOUBLE", "Mean CLV per customer"),
        Column("median_clv", "DOUBLE", "Median CLV per customer"),
        Column("clv_share", "DOUBLE", "total_clv / all CLV (sums to 1 per dimension)"),
        Column("mean_p_alive", "DOUBLE", "Mean P(alive)"),
        Column("expected_purchases", "DOUBLE", "Sum of expected purchase days over the horizon"),
        Column("mean_expected_spend", "DOUBLE", "Mean expected spend per purchase day"),
        Column("historic_spend", "DOUBLE", "Spend in the window (clv_model_inputs)"),
    ),
    primary_key=("dimension", "segment"),
)

CLV_TABLES: tuple[TableDef, ...] = (
    CLV_MODEL_INPUTS,
    CLV_MODEL_FIT,
    CLV_CALIBRATION_HOLDOUT,
    CLV_CUSTOMER_PREDICTIONS,
    CLV_BY_SEGMENT,
)

# --------------------------------------------------------------------------------------------
# SQL ($period_start, $period_end: the purchase days counted; T ends on $period_end)
# --------------------------------------------------------------------------------------------

BTYD_INPUTS_SQL = load_sql("clv/btyd_inputs")

#: BTYD inputs over the RFM window (parameters: RfmWindow.sql_params()).
#: The BTYD statement is reused as is, its period parameters renamed to the window's (so the
#: one statement serves both the calibration tests, with $period_*, and this table).
CLV_MODEL_INPUTS_SQL = load_sql(
    "clv/model_inputs",
    btyd_inputs=BTYD_INPUTS_SQL.replace("$period_start", "$window_start").replace(
        "$period_end", "$window_end"
    ),
)

#: Calibration BTYD inputs (purchase days in [$period_start, $calibration_end], T ending on
#: $calibration_end) and the purchase days in the holdout ($calibration_end, $holdout_end] of
#: every customer seen in the calibration period, in one pass over the sales lines.
CALIBRATION_HOLDOUT_SQL = load_sql("clv/calibration_holdout")

#: Check: RFM customers vs input rows, distinct ids, and rows breaking the BTYD invariants.
INPUTS_CONSISTENCY_SQL = load_sql("clv/inputs_consistency")

CLV_BY_SEGMENT_SQL = load_sql("clv/by_segment")

#: The prediction horizon (months) of clv_customer_predictions (NULL without predictions).
PREDICTION_HORIZON_SQL = load_sql("clv/prediction_horizon")

#: Per model flagged not fitted in clv_model_fit: the reason.
MODELS_NOT_FITTED_SQL = load_sql("clv/models_not_fitted")


def default_calibration_end(window_start: date, window_end: date) -> date:
    """The last calibration day: two thirds of the history for fitting, the last third held
    out (FHL 2005 used 39 of 78 weeks; a third keeps more data for the fit)."""
    return window_end - timedelta(days=(window_end - window_start).days // 3)


def calibration_skip_reason(
    window_start: date, window_end: date, calibration_end: date
) -> str | None:
    """Why the calibration / holdout comparison cannot run on this split (None: it can)."""
    if not window_start <= calibration_end < window_end:
        return (
            f"calibration_end {calibration_end} is outside the window {window_start} .. "
            f"{window_end} (it must leave at least one holdout day)"
        )
    holdout = (window_end - calibration_end).days
    if holdout < MIN_HOLDOUT_DAYS:
        return (
            f"the holdout would be {holdout} day(s) (< {MIN_HOLDOUT_DAYS}): the history "
            f"{window_start} .. {window_end} is too short for a calibration / holdout split"
        )
    return None


# --------------------------------------------------------------------------------------------
# Parameters and fits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD: purchase rate lambda ~ Gamma(r, alpha); dropout after each purchase with
    probability p ~ Beta(a, b). alpha is in the time unit of the data (days here)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float

    def population_mean(self) -> float:
        """E[spend per purchase] of a customer we know nothing about: p gamma / (q - 1)."""
        if self.q <= 1:
            raise ClvFitError(
                f"Gamma-Gamma q = {self.q:.4g} <= 1: the mean spend per purchase is infinite "
                "under the fitted model; the spend data is too heavy-tailed for Gamma-Gamma"
            )
        return self.p * self.gamma / (self.q - 1)


@dataclass(frozen=True)
class FitResult:
    """A maximum-likelihood fit and what the optimizer said about it."""

    model: str
    params: BgNbdParams | GammaGammaParams
    log_likelihood: float
    n_customers: int
    converged: bool
    message: str
    iterations: int

    def rows(self) -> list[dict[str, object]]:
        """One row per parameter for marts.clv_model_fit (without the window columns)."""
        return [
            {
                "model": self.model,
                "parameter": name,
                "value": float(value),
                "log_likelihood": self.log_likelihood,
                "n_customers": self.n_customers,
                "converged": self.converged,
                "optimizer_message": self.message,
                "iterations": self.iterations,
            }
            for name, value in asdict(self.params).items()
        ]


#: Function evaluations allowed to the Nelder-Mead fallback. It only runs when L-BFGS-B does
#: not report convergence; its bounds and this cap stop a flat ridge from costing minutes.
POLISH_MAX_EVALUATIONS = 4_000
#: Bounds of the log-parameters (every parameter in [3e-7, 3.3e6]).
LOG_PARAMETER_BOUNDS = (-15.0, 15.0)

#: L-BFGS-B stops that did not report success are accepted when every component of the
#: gradient of the mean log-likelihood (in log-parameters) is below this.
FLAT_GRADIENT = 1e-6

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _projected_gradient(theta: np.ndarray, grad: np.ndarray) -> float:
    """max |gradient| ignoring the components that push against a bound (the parameter
    cannot move that way: a and b at their upper bound on a flat ridge, say)."""
    low, high = LOG_PARAMETER_BOUNDS
    blocked = ((theta >= high - 1e-9) & (grad < 0)) | ((theta <= low + 1e-9) & (grad > 0))
    return float(np.max(np.abs(np.where(blocked, 0.0, grad))))


def _maximise(
    model: str,
    make: Callable[..., BgNbdParams | GammaGammaParams],
    objective: Objective,
    start: np.ndarray,
    n: int,
) -> FitResult:
    """Minimise `objective(theta) -> (mean negative log-likelihood, its gradient)` over the
    log-parameters theta (keeps every parameter > 0).

    L-BFGS-B with the analytic gradient converges to the published CDNOW optima in 20-60
    iterations, each one likelihood-and-gradient evaluation over the distinct rows (weighted).
    Only when it does not report convergence (a line-search failure on a very flat ridge, say)
    does a bounded, capped Nelder-Mead polish run from its end point; the better point wins.
    """

    def safe(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective(theta)
        if not (np.isfinite(value) and np.all(np.isfinite(grad))):
            return 1e12, np.zeros_like(theta)
        return value, grad

    bounds = [LOG_PARAMETER_BOUNDS] * len(start)
    first = optimize.minimize(
        safe,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2_000},
    )
    best, message, iterations, converged = first, str(first.message), int(first.nit), first.success
    if not converged and _projected_gradient(first.x, safe(first.x)[1]) <= FLAT_GRADIENT:
        # a line-search stop on a flat ridge (a, b growing together): already an optimum
        converged, message = True, f"{message}; accepted: |gradient| <= {FLAT_GRADIENT:g}"
    if not converged:
        polish = optimize.minimize(
            lambda theta: safe(theta)[0],
            first.x,
            method="Nelder-Mead",
            bounds=bounds,
            options={
                "xatol": 1e-9,
                "fatol": 1e-12,
                "maxiter": POLISH_MAX_EVALUATIONS,
                "maxfev": POLISH_MAX_EVALUATIONS,
            },
        )
        best = polish if polish.fun <= first.fun else first
        message += f"; Nelder-Mead polish: {polish.message}"
        iterations += int(polish.nit)
        converged = bool(polish.success)
    return FitResult(
        model=model,
        params=make(*(float(v) for v in np.exp(best.x))),
        log_likelihood=-float(best.fun) * n,
        n_customers=n,
        converged=bool(converged and np.isfinite(best.fun) and best.fun < 1e12),
        message=message,
        iterations=iterations,
    )


def _require(n: int, minimum: int, what: str) -> None:
    if n < max(minimum, 1):
        raise ClvFitError(
            f"{what}: {n} customer(s), fewer than min_customers = {minimum}; widen the RFM "
            "window, load more history or lower clv_settings.min_customers"
        )


def _distinct_rows(
    *columns: np.ndarray, return_inverse: bool = False, weights: np.ndarray | None = None
):
    """The distinct rows of `columns` and how often each occurs (sorted by the first column,
    then the next; one lexsort, several times faster than np.unique(axis=0)); with `weights`
    (how many each input row stands for), their sums instead of the counts; with
    `return_inverse`, also the index of each input row into the distinct rows."""
    data = [np.asarray(c, dtype=float) for c in columns]
    order = np.lexsort(data[::-1])
    ordered = [d[order] for d in data]
    same = np.zeros(len(order), dtype=bool)
    same[1:] = True
    for d in ordered:
        same[1:] &= d[1:] == d[:-1]
    first = np.flatnonzero(~same)
    if weights is None:
        counts = np.diff(np.append(first, len(order))).astype(float)
    else:
        ordered_weights = np.asarray(weights, dtype=float)[order]
        counts = np.add.reduceat(ordered_weights, first) if len(first) else ordered_weights
    distinct = [d[first] for d in ordered]
    if not return_inverse:
        return distinct, counts
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(~same) - 1
    return distinct, counts, inverse


def _levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and the index of each element into them (special functions are then
    evaluated once per distinct value: a few hundred days, a few dozen frequencies)."""
    levels, index = np.unique(values, return_inverse=True)
    return levels, index.ravel()


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b) without BLAS: a threaded BLAS dot spins up threads that only contend with
    the other steps on a small machine, and these vectors are short."""
    return float(np.sum(a * b))


def _log_rising(base: float, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(base (base+1) ... (base+x-1)) = lnG(base+x) - lnG(base) and its derivative in base,
    psi(base+x) - psi(base), for each x of `xs` (distinct, >= 0). For whole x (purchase counts)
    as running sums of log(base+k) and 1/(base+k): exact where the difference of two large
    lnG values loses the digits an optimizer needs (a, b in the millions on a flat ridge)."""
    top = int(xs.max()) if len(xs) else 0
    if np.all(xs == np.round(xs)) and top <= 1_000_000:
        steps = base + np.arange(top, dtype=float)
        log_sum = np.concatenate(([0.0], np.cumsum(np.log(steps))))
        inv_sum = np.concatenate(([0.0], np.cumsum(1.0 / steps)))
        index = xs.astype(np.int64)
        return log_sum[index], inv_sum[index]
    return (
        special.gammaln(base + xs) - special.gammaln(base),
        special.digamma(base + xs) - special.digamma(base),
    )


def bgnbd_objective(frequency, recency, T, customers=None) -> tuple[Objective, int]:
    """The mean negative BG/NBD log-likelihood over log(r, alpha, a, b) and its analytic
    gradient, and the number of customers. The likelihood (FHL 2005, eq. 6) rewritten as

    ll = R(r, x) + r ln alpha + R(b, x) - R(a+b, x)
         + ln( (alpha+T)^-(r+x) + [x > 0] a / (b+x-1) (alpha+t_x)^-(r+x) ),

    with R(c, x) = ln G(c+x) - ln G(c) (see _log_rising); test_clv.py checks it against the
    per-customer formula of the paper.

    It depends on (x, t_x, T) only: each distinct triple is evaluated once, weighted by how
    many customers share it (in whole days there are far fewer triples than customers), and
    the terms of x alone once per distinct x. `customers`: how many customers each row stands
    for (BGNBD_FIT_INPUTS_SQL's rows); default one each.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    (x, t_x, T), w = _distinct_rows(x, t_x, T, weights=customers)
    n = float(w.sum())
    xs, ix = _levels(x)
    Ts, iT = _levels(T)
    ts, it = _levels(t_x)
    wx = np.bincount(ix, weights=w, minlength=len(xs))  # customers per distinct x
    repeat = x > 0
    x_minus_one = np.where(repeat, x - 1, 0.0)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        (log_r, d_r), (log_b, d_b), (log_ab, d_ab) = (_log_rising(c, xs) for c in (r, b, a + b))
        log_aT, log_at = np.log(alpha + Ts)[iT], np.log(alpha + ts)[it]
        rx = r + x
        alive = -rx * log_aT
        with np.errstate(divide="ignore"):
            dropped = np.where(repeat, np.log(a) - np.log(b + x_minus_one) - rx * log_at, -np.inf)
        total = np.logaddexp(alive, dropped)
        share_drop = np.exp(dropped - total)  # posterior probability of "dropped out"
        share_alive = 1.0 - share_drop
        ll = _dot(wx, log_r + log_b - log_ab) + n * r * np.log(alpha) + _dot(w, total)
        g_r = (
            _dot(wx, d_r) + n * np.log(alpha) - _dot(w, share_alive * log_aT + share_drop * log_at)
        )
        g_alpha = n * r / alpha - _dot(
            w * rx, share_alive / (alpha + Ts)[iT] + share_drop / (alpha + ts)[it]
        )
        w_drop = w * share_drop
        g_a = -_dot(wx, d_ab) + float(np.sum(w_drop)) / a
        g_b = _dot(wx, d_b - d_ab) - _dot(w_drop, 1.0 / (b + x_minus_one))
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        return -float(ll) / n, -grad / n

    return objective, int(n)


def fit_bgnbd(
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    min_customers: int = 1,
    customers: np.ndarray | None = None,
) -> FitResult:
    """Maximum-likelihood BG/NBD on every customer (the time unit is that of recency and T);
    `customers`: how many customers each row stands for (default one each)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    w = np.ones(len(x)) if customers is None else np.asarray(customers, dtype=float)
    _require(int(w.sum()), min_customers, "BG/NBD needs customers to fit")
    if not np.any((x > 0) & (w > 0)):
        raise ClvFitError("BG/NBD cannot be fitted: no customer has a repeat purchase day")
    rate = max(_dot(w, x) / max(_dot(w, T), 1e-9), 1e-9)
    start = np.log([1.0, 1.0 / rate, 1.0, 1.0])  # r / alpha = the observed purchase rate
    objective, n = bgnbd_objective(x, t_x, T, customers)
    return _maximise(BGNBD, BgNbdParams, objective, start, n)


def gamma_gamma_sample(
    frequency: np.ndarray, monetary: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The customers Gamma-Gamma is fitted on: a repeat purchase and positive mean spend."""
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    return x[keep], m[keep]


def gamma_gamma_objective(x: np.ndarray, m: np.ndarray) -> Objective:
    """The mean negative Gamma-Gamma log-likelihood over log(p, q, gamma) and its analytic
    gradient (test_clv.py checks it against the paper's per-customer formula); terms in x
    alone are summed per distinct x and the data-only sums are computed once."""
    n = float(len(x))
    xs, ix = _levels(x)
    wx = np.bincount(ix, minlength=len(xs)).astype(float)
    log_m = np.log(m)
    const_x = _dot(x, log_m + np.log(x))  # p * this: (px) log m + px log x
    sum_log_m = float(np.sum(log_m))
    xm = x * m

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, g = np.exp(theta)
        log_gxm = np.log(g + xm)
        sum_x_log, sum_log = _dot(x, log_gxm), float(np.sum(log_gxm))
        pxs = p * xs
        ll = (
            _dot(wx, special.gammaln(pxs + q) - special.gammaln(pxs))
            + n * (q * np.log(g) - special.gammaln(q))
            + p * const_x
            - sum_log_m
            - p * sum_x_log
            - q * sum_log
        )
        psi_pxq = special.digamma(pxs + q)
        g_p = _dot(wx * xs, psi_pxq - special.digamma(pxs)) + const_x - sum_x_log
        g_q = _dot(wx, psi_pxq) + n * (np.log(g) - special.digamma(q)) - sum_log
        g_g = n * q / g - float(np.sum((p * x + q) / (g + xm)))
        grad = np.array([g_p * p, g_q * q, g_g * g])
        return -float(ll) / n, -grad / n

    return objective


def fit_gamma_gamma(
    frequency: np.ndarray, monetary: np.ndarray, min_customers: int = 1
) -> FitResult:
    """Maximum-likelihood Gamma-Gamma on the customers with a repeat purchase and a positive
    mean spend."""
    x, m = gamma_gamma_sample(frequency, monetary)
    _require(
        len(x),
        min_customers,
        "Gamma-Gamma needs customers with a repeat purchase (and positive mean spend)",
    )
    mean, var = float(np.mean(m)), float(np.var(m))
    q0 = 2.0 + mean**2 / var if var > 0 else 3.0  # method-of-moments-like start, q > 1
    start = np.log([1.0, q0, mean * (q0 - 1)])
    return _maximise(GAMMA_GAMMA, GammaGammaParams, gamma_gamma_objective(x, m), start, len(x))


# --------------------------------------------------------------------------------------------
# Predictions (numpy arrays in, arrays out)
# --------------------------------------------------------------------------------------------


def _dropout_odds(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """[x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x), the odds of having
    dropped out after the last purchase (0 without a repeat: BG/NBD customers can only drop
    out right after a purchase)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    odds = np.zeros_like(x, dtype=float)
    rep = x > 0
    log_odds = (
        np.log(a)
        - np.log(b + x[rep] - 1)
        + (r + x[rep]) * (np.log(alpha + T[rep]) - np.log(alpha + t_x[rep]))
    )
    with np.errstate(over="ignore"):
        odds[rep] = np.exp(log_odds)  # inf (P(alive) = 0) beyond ~1e308
    return odds


def p_alive(params: BgNbdParams, frequency, recency, T) -> np.ndarray:
    """P(still active at T | x, t_x, T) = 1 / (1 + dropout odds) (FHL 2005, eq. 13)."""
    x, t_x, T = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T))
    return 1.0 / (1.0 + _dropout_odds(params, x, t_x, T))


def _log_hyp2f1(a: np.ndarray, b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log 2F1(a, b; c; z) for 0 <= z < 1, falling back on Euler's transformation
    2F1(a,b;c;z) = (1-z)^(c-a-b) 2F1(c-a, c-b; c; z) where the direct series overflows
    (evaluated only there)."""
    a, b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a, b, c, z)))
    direct = special.hyp2f1(a, b, c, z)
    good = np.isfinite(direct) & (direct > 0)
    out = np.empty_like(direct)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[good] = np.log(direct[good])
        bad = ~good
        if bad.any():
            a, b, c, z = a[bad], b[bad], c[bad], z[bad]
            out[bad] = np.log(special.hyp2f1(c - a, c - b, c, z)) + (c - a - b) * np.log1p(-z)
    return out


def _purchases_if_alive(params: BgNbdParams, t, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The numerator of FHL 2005 eq. 10: E[purchases in (T, T + t]] x (1 + dropout odds)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=float)
    z = t / (alpha + T + t)
    log_f = _log_hyp2f1(r + x, b + x, a + b + x - 1, z)
    survive = np.exp(log_f + (r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
    return (a + b + x - 1) / (a - 1) * (1.0 - survive)


def expected_purchases(params: BgNbdParams, t, frequency, recency, T) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10), broadcasting over t.

    Needs the Gauss hypergeometric function: there is no elementary closed form of the
    conditional expectation (the log-likelihood has one; this does not).
    """
    x, t_x, T = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T))
    return _purchases_if_alive(params, t, x, T) / (1.0 + _dropout_odds(params, x, t_x, T))


def expected_purchases_over(params: BgNbdParams, horizons, frequency, recency, T) -> np.ndarray:
    """expected_purchases for every customer (rows) and every horizon in days (columns).

    The hypergeometric part depends on (x, T) only and is computed once per distinct pair
    (a few thousand at 40,000 customers); t_x enters through P(alive) alone."""
    x, t_x, T = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T))
    t = np.atleast_1d(np.asarray(horizons, dtype=float))[None, :]
    (ux, uT), _, inverse = _distinct_rows(x, T, return_inverse=True)
    per_pair = _purchases_if_alive(params, t, ux[:, None], uT[:, None])
    return per_pair[inverse] / (1.0 + _dropout_odds(params, x, t_x, T))[:, None]


def expected_purchases_unconditional(params: BgNbdParams, t) -> np.ndarray:
    """E[X(t)] for a customer observed from their first purchase (FHL 2005, eq. 9)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=float)
    levels, index = np.unique(t, return_inverse=True)  # whole days: a few hundred values
    log_f = _log_hyp2f1(r, b, a + b - 1, levels / (alpha + levels))
    values = (a + b - 1) / (a - 1) * (1.0 - np.exp(r * np.log(alpha / (alpha + levels)) + log_f))
    return values[index.reshape(t.shape)]


def expected_spend(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """E[spend per purchase | x, mean m] (Fader & Hardie 2013, eq. 5): a weighted average of
    the population mean and the customer's own mean, the weight on the latter growing with x.
    Without a repeat purchase (x = 0) it is the population mean. A mean repeat spend <= 0
    (returns or zero prices; outside the model, which has positive spends) counts as 0, so
    such a customer gets (1 - weight) x the population mean: less the more repeat days say so.
    """
    x = np.atleast_1d(np.asarray(frequency, dtype=float))
    m = np.atleast_1d(np.asarray(monetary, dtype=float))
    population = params.population_mean()
    px = params.p * x
    weight = px / (px + params.q - 1)
    own = np.where((x > 0) & np.isfinite(m), np.maximum(m, 0.0), 0.0)
    return (1 - weight) * population + weight * own


def own_mean_spend(total_spend, purchase_days) -> np.ndarray:
    """The fallback without a Gamma-Gamma fit: the customer's own mean spend per purchase day
    over the window (first day included), 0 when it is not positive."""
    total = np.nan_to_num(np.asarray(total_spend, dtype=float), nan=0.0)
    days = np.maximum(np.asarray(purchase_days, dtype=float), 1.0)
    return np.maximum(total / days, 0.0)


def monthly_expected_purchases(
    params: BgNbdParams, months: int, frequency, recency, T, days_per_month: float = DAYS_PER_MONTH
) -> np.ndarray:
    """Expected purchases in each of the next `months` months: customers x months."""
    edges = np.arange(months + 1, dtype=float) * days_per_month
    return np.diff(expected_purchases_over(params, edges, frequency, recency, T), axis=1)


def _discounted(per_month: np.ndarray, monthly_discount_rate: float) -> np.ndarray:
    discount = (1.0 + monthly_discount_rate) ** -np.arange(1, per_month.shape[1] + 1, dtype=float)
    return np.sum(per_month * discount, axis=1)  # no BLAS threads for a small product


#: spend_basis of clv_customer_predictions.
SPEND_GAMMA_GAMMA = "gamma_gamma"
SPEND_OWN_MEAN = "own_mean"


def predict_customers(
    inputs: pd.DataFrame,
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams | None,
    months: int,
    monthly_discount_rate: float,
) -> pd.DataFrame:
    """The prediction columns for every row of `inputs` (clv_model_inputs), in its order.

    Without a Gamma-Gamma fit (`gamma_gamma` None) the expected spend per purchase day is the
    customer's own mean (own_mean_spend; column spend_basis says which)."""
    x, t_x, T, m = (
        inputs[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary")
    )
    cumulative = expected_purchases_over(
        bgnbd, np.arange(months + 1, dtype=float) * DAYS_PER_MONTH, x, t_x, T
    )
    if gamma_gamma is None:
        spend, basis = (
            own_mean_spend(inputs["total_spend"], inputs["purchase_days"]),
            SPEND_OWN_MEAN,
        )
    else:
        spend, basis = expected_spend(gamma_gamma, x, m), SPEND_GAMMA_GAMMA
    out = inputs[["customer_id", "frequency", "recency", "T", "monetary"]].copy()
    out["p_alive"] = p_alive(bgnbd, x, t_x, T)
    out["expected_purchases"] = cumulative[:, -1]
    out["expected_spend"] = spend
    out["clv"] = _discounted(np.diff(cumulative, axis=1), monthly_discount_rate) * spend
    out["spend_basis"] = basis
    out["horizon_months"] = months
    out["monthly_discount_rate"] = monthly_discount_rate
    return out


#: Customers predicted at a time: the horizon's cumulative expectations are a customers x
#: (months + 1) array (5.4M customers at 12 months: 560 MB, and as much for its differences).
PREDICTION_CHUNK_ROWS = 250_000

#: The rowid range of clv_model_inputs, and one chunk of it in table order (`?` = first and
#: last rowid).
INPUTS_ROWID_RANGE_SQL = f"SELECT min(rowid), max(rowid) FROM {CLV_MODEL_INPUTS.fqn}"
INPUTS_CHUNK_SQL = (
    f"SELECT * FROM {CLV_MODEL_INPUTS.fqn} WHERE rowid BETWEEN ? AND ? ORDER BY rowid"
)

#: What the predictions asset reports and checks, over the stored predictions: counts against
#: the inputs, P(alive) in [0, 1], every prediction a finite number >= 0 (NULL and NaN fail).
PREDICTIONS_STATS_SQL = load_sql("clv/predictions_stats")


def write_predictions(
    conn: duckdb.DuckDBPyConnection,
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams | None,
    months: int,
    monthly_discount_rate: float,
    chunk_rows: int = PREDICTION_CHUNK_ROWS,
) -> int:
    """Replace clv_customer_predictions with :func:`predict_customers` over clv_model_inputs,
    `chunk_rows` customers at a time (each prediction reads only its own customer's row).
    Returns the rows written.

    Each chunk commits on its own: in one transaction DuckDB kept every uncommitted chunk in
    the process's memory (5.4M customers: 1.7 GB of RSS against 0.6 GB). A run stays
    all-or-nothing through the warehouse's undo copy (resources.py `run_scope`), and no other
    process can read the file while the run writes it."""
    first, last = conn.execute(INPUTS_ROWID_RANGE_SQL).fetchall()[0]
    ensure_table(conn, CLV_CUSTOMER_PREDICTIONS)
    conn.execute(f"DELETE FROM {CLV_CUSTOMER_PREDICTIONS.fqn}")
    written = 0
    for start in range(first, last + 1, chunk_rows) if first is not None else ():
        inputs = conn.execute(INPUTS_CHUNK_SQL, [start, start + chunk_rows - 1]).df()
        if inputs.empty:
            continue
        frame = predict_customers(inputs, bgnbd, gamma_gamma, months, monthly_discount_rate)
        frame["as_of"] = inputs["as_of"]
        written += replace_rows_from_frame(
            conn,
            CLV_CUSTOMER_PREDICTIONS,
            frame,
            delete_where="false",  # appended: the table was emptied above
            ensure=False,
        )
    return written


def bgnbd_prediction_problems(
    params: BgNbdParams, frequency, recency, T, horizon_days: float, customers=None
) -> list[str]:
    """Why predictions with these parameters would not be valid numbers for these customers
    (empty: they are): a degenerate optimum (a and b at their lower bound, say: every customer
    either never or always drops out) makes the hypergeometric term blow up. `customers`: how
    many customers each row stands for (default one each)."""
    x, t_x, T = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T))
    w = np.ones(len(x)) if customers is None else np.asarray(customers, dtype=float)
    with np.errstate(all="ignore"):
        alive = p_alive(params, x, t_x, T)
        purchases = expected_purchases_over(params, [horizon_days], x, t_x, T)[:, 0]
    problems = []
    bad_alive = int(np.sum(w[~((alive >= 0) & (alive <= 1))]))
    bad_purchases = int(np.sum(w[~(np.isfinite(purchases) & (purchases >= 0))]))
    if bad_alive:
        problems.append(f"P(alive) undefined or outside [0, 1] for {bad_alive} customer(s)")
    if bad_purchases:
        problems.append(
            f"expected purchases not a finite number >= 0 for {bad_purchases} customer(s)"
        )
    low, high = (
        float(np.exp(v)) * f for v, f in zip(LOG_PARAMETER_BOUNDS, (1.01, 0.99), strict=True)
    )
    at_bound = [f"{k} = {v:.3g}" for k, v in asdict(params).items() if not low < v < high]
    if problems and at_bound:
        problems.append(
            f"{', '.join(at_bound)} at the edge of the search range: a degenerate optimum (the "
            "data cannot tell how customers drop out; a longer history usually helps)"
        )
    return problems


# --------------------------------------------------------------------------------------------
# Calibration / holdout
# --------------------------------------------------------------------------------------------


def frequency_group(frequency: pd.Series, cap: int = FREQUENCY_GROUP_CAP) -> pd.Series:
    """0, 1, ..., cap-1 and 'cap+' as labels."""
    labels = np.array([str(k) for k in range(cap)] + [f"{cap}+"], dtype=object)
    return pd.Series(
        labels[np.clip(frequency.to_numpy(), 0, cap).astype(int)], index=frequency.index
    )


def holdout_comparison(
    calibration: pd.DataFrame,
    holdout: pd.DataFrame | None,
    params: BgNbdParams,
    holdout_days: float,
) -> pd.DataFrame:
    """Predicted vs actual holdout purchases per calibration-frequency group.

    `calibration`: BTYD inputs of the calibration period (customer_id, frequency, recency, T,
    and holdout_purchases when `holdout` is None); a row may stand for several customers with
    the same frequency, recency and T, counted in an optional `customers` column, its
    holdout_purchases their sum (CALIBRATION_HOLDOUT_SQL's rows); `holdout`: customer_id,
    holdout_purchases (customers without one count 0).
    """
    data = (
        calibration if holdout is None else calibration.merge(holdout, on="customer_id", how="left")
    )
    x, t_x, T = (data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    weight = data["customers"].to_numpy(dtype=float) if "customers" in data else np.ones(len(data))
    actual = np.nan_to_num(data["holdout_purchases"].to_numpy(dtype=float), nan=0.0)
    predicted = expected_purchases_over(params, [holdout_days], x, t_x, T)[:, 0]
    group = np.clip(x, 0, FREQUENCY_GROUP_CAP).astype(int)
    size = FREQUENCY_GROUP_CAP + 1
    customers = np.bincount(group, weights=weight, minlength=size).round().astype(np.int64)
    actual_total = np.bincount(group, weights=actual, minlength=size)
    predicted_total = np.bincount(group, weights=weight * predicted, minlength=size)
    present = np.flatnonzero(customers)
    labels = frequency_group(pd.Series(present))
    return pd.DataFrame(
        {
            "group_order": present,
            "frequency_group": labels.to_numpy(),
            "customers": customers[present],
            "actual_purchases": actual_total[present] / customers[present],
            "predicted_purchases": predicted_total[present] / customers[present],
            "actual_total": actual_total[present],
            "predicted_total": predicted_total[present],
        }
    )


# --------------------------------------------------------------------------------------------
# Fit outcomes (what marts.clv_model_fit records) and reading them back
# --------------------------------------------------------------------------------------------

PARAMETER_NAMES = {BGNBD: ("r", "alpha", "a", "b"), GAMMA_GAMMA: ("p", "q", "gamma")}
MODEL_LABELS = {BGNBD: "BG/NBD", GAMMA_GAMMA: "Gamma-Gamma"}


@dataclass(frozen=True)
class ModelOutcome:
    """A model's fit, or why there is none usable: `reason` None means fitted and usable;
    otherwise `fit` holds the rejected optimum (None when the optimizer never ran)."""

    model: str
    fit: FitResult | None
    reason: str | None

    @property
    def fitted(self) -> bool:
        return self.reason is None

    def rows(self) -> list[dict[str, object]]:
        """One row per parameter for marts.clv_model_fit (without the window columns); the
        values are NULL when the optimizer never ran."""
        if self.fit is not None:
            rows = self.fit.rows()
        else:
            rows = [
                {
                    "model": self.model,
                    "parameter": name,
                    "value": None,
                    "log_likelihood": None,
                    "n_customers": None,
                    "converged": None,
                    "optimizer_message": None,
                    "iterations": None,
                }
                for name in PARAMETER_NAMES[self.model]
            ]
        return [{**row, "fitted": self.fitted, "not_fitted_reason": self.reason} for row in rows]


def attempt_fit(
    model: str, fit: Callable[[], FitResult], *checks: Callable[[FitResult], list[str]]
) -> ModelOutcome:
    """Run `fit`; a ClvFitError, unusable parameters (usable_problems) or a problem found by
    `checks` make a not-fitted outcome with the reason."""
    try:
        result = fit()
    except ClvFitError as exc:
        return ModelOutcome(model, None, str(exc))
    problems = usable_problems(result) + [p for check in checks for p in check(result)]
    if problems:
        return ModelOutcome(
            model, result, f"{MODEL_LABELS[model]} fit not usable: " + "; ".join(problems)
        )
    return ModelOutcome(model, result, None)


@dataclass(frozen=True)
class FittedModels:
    """The usable parameters read back from marts.clv_model_fit (None: not fitted) and, per
    model not fitted, why."""

    bgnbd: BgNbdParams | None
    gamma_gamma: GammaGammaParams | None
    reasons: dict[str, str]


def models_from_fit(fit: pd.DataFrame) -> FittedModels:
    """The models flagged fitted in the rows of marts.clv_model_fit, and the reasons of the
    others."""
    params: dict[str, BgNbdParams | GammaGammaParams | None] = {}
    reasons: dict[str, str] = {}
    for model, cls in ((BGNBD, BgNbdParams), (GAMMA_GAMMA, GammaGammaParams)):
        rows = fit[fit["model"] == model]
        values = dict(zip(rows["parameter"], rows["value"], strict=True))
        fitted = len(rows) > 0 and bool(rows["fitted"].fillna(False).all())
        if fitted and all(k in values for k in PARAMETER_NAMES[model]):
            params[model] = cls(*(float(values[k]) for k in PARAMETER_NAMES[model]))
            continue
        params[model] = None
        given = rows["not_fitted_reason"].dropna()
        reasons[model] = (
            str(given.iloc[0])
            if len(given)
            else f"marts.clv_model_fit has no usable {MODEL_LABELS[model]} parameters; rebuild it"
        )
    return FittedModels(params[BGNBD], params[GAMMA_GAMMA], reasons)


def usable_problems(fit: FitResult) -> list[str]:
    """Why a fit's parameters cannot be used for predictions (empty: they can)."""
    values = asdict(fit.params)
    problems = [f"{k} = {v!r}" for k, v in values.items() if not (np.isfinite(v) and v > 0)]
    if fit.model == BGNBD and abs(values["a"] - 1) < 1e-9:
        problems.append("a = 1 (the expected-purchases formula divides by a - 1)")
    if fit.model == GAMMA_GAMMA and values["q"] <= 1:
        problems.append(f"q = {values['q']:.4g} <= 1 (infinite mean spend per purchase)")
    if not np.isfinite(fit.log_likelihood):
        problems.append("the log-likelihood is not finite")
    return problems
