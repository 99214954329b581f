-- Per snapshot month: a digest of the columns segment_transitions.sql reads from each
-- customer's row (a sum of row hashes: independent of row order, changed by any changed,
-- added or dropped row). A pair of months is recomputed only when one of its months' digests
-- (or the settings) differs from the one it was computed from; the last moves' kept state
-- (customer, segment, tier: among these columns) likewise.
SELECT
    snapshot_month,
    CAST(count(*) AS VARCHAR) || ':'
    || CAST(sum(hash(customer_id, segment, segment_order, price_segment, recency_days,
                     month_revenue)) AS VARCHAR) AS digest
FROM {{ marts.customer_snapshots }}
GROUP BY snapshot_month
