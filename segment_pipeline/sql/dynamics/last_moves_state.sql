-- The last moves' state through $through in one pass, for when no stored state holds: per
-- customer with a snapshot row up to $through, their moves up to their last row there (what
-- folding last_moves_step.sql month by month from the first month gives; a test holds them
-- equal). A move is a row whose segment (tier) differs from the previous row's, or the first
-- row; the months in the segment are the rows from the last move on.
WITH history AS (
    SELECT customer_id, snapshot_month, segment, price_segment
    FROM {{ marts.customer_snapshots }}
    -- one bucket of customers when run in buckets (empty otherwise)
    {{ customer_bucket_filter }}
),

seq AS (
    SELECT
        customer_id,
        snapshot_month,
        segment,
        price_segment,
        lag(segment) OVER w AS prev_segment,
        lag(price_segment) OVER w AS prev_tier,
        row_number() OVER w AS row_in_history
    FROM history
    WHERE snapshot_month <= $through
    WINDOW w AS (PARTITION BY customer_id ORDER BY snapshot_month)
),

marked AS (
    SELECT
        *,
        (prev_segment IS NULL OR prev_segment != segment) AS segment_moved,
        (prev_tier IS NULL OR prev_tier != price_segment) AS tier_moved,
        {{ price_move }} AS move_of_tier
    FROM seq
)

SELECT
    customer_id,
    max(snapshot_month) AS last_month,
    arg_max(segment, snapshot_month) AS segment,
    arg_max(coalesce(prev_segment, '(entered)'), snapshot_month)
        FILTER (WHERE segment_moved) AS previous_segment,
    max(snapshot_month) FILTER (WHERE segment_moved) AS segment_since,
    CAST(
        count(*) - max(row_in_history) FILTER (WHERE segment_moved) + 1 AS INTEGER
    ) AS months_in_segment,
    arg_max(price_segment, snapshot_month) AS price_segment,
    arg_max(coalesce(prev_tier, '(entered)'), snapshot_month)
        FILTER (WHERE tier_moved) AS previous_price_segment,
    max(snapshot_month) FILTER (WHERE tier_moved) AS price_segment_since,
    arg_max(move_of_tier, snapshot_month) FILTER (WHERE tier_moved) AS price_move
FROM marked
GROUP BY customer_id
