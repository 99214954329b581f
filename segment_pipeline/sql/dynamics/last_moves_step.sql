-- One month of the last moves: per customer with a snapshot row in $month, their moves up
-- to $month from their moves up to their previous row (the moves_state fragment: the state
-- through the months before; a customer not there enters in $month). A segment (price tier)
-- other than the previous row's, or no previous row, is a move in $month: from the previous
-- one, or from (entered); otherwise the previous moves hold and the months in the segment
-- grow by one. Folded month by month from the first month, this is last_moves_state.sql's
-- window over each customer's months. Segment and tier are never NULL in the snapshots, so
-- != is IS DISTINCT FROM here.
WITH step AS (
    SELECT
        r.customer_id,
        r.snapshot_month,
        r.segment,
        r.price_segment,
        r.recency_days,
        r.monetary,
        r.month_revenue,
        s.segment AS prev_segment,
        s.price_segment AS prev_tier,
        s.previous_segment AS held_previous_segment,
        s.segment_since AS held_segment_since,
        s.months_in_segment AS held_months,
        s.previous_price_segment AS held_previous_tier,
        s.price_segment_since AS held_tier_since,
        s.price_move AS held_price_move,
        (s.customer_id IS NULL OR r.segment != s.segment) AS segment_moved,
        (s.customer_id IS NULL OR r.price_segment != s.price_segment) AS tier_moved
    FROM {{ marts.customer_snapshots }} AS r
    LEFT JOIN {{ moves_state }} AS s USING (customer_id)
    WHERE r.snapshot_month = $month
)

SELECT
    customer_id,
    snapshot_month AS last_month,
    segment,
    price_segment,
    recency_days,
    monetary,
    month_revenue,
    CASE
        WHEN segment_moved THEN coalesce(prev_segment, '(entered)')
        ELSE held_previous_segment
    END AS previous_segment,
    CASE WHEN segment_moved THEN snapshot_month ELSE held_segment_since END AS segment_since,
    CAST(CASE WHEN segment_moved THEN 1 ELSE held_months + 1 END AS INTEGER)
        AS months_in_segment,
    CASE
        WHEN tier_moved THEN coalesce(prev_tier, '(entered)')
        ELSE held_previous_tier
    END AS previous_price_segment,
    CASE WHEN tier_moved THEN snapshot_month ELSE held_tier_since END AS price_segment_since,
    CASE
        WHEN tier_moved THEN {{ price_move }}
        ELSE held_price_move
    END AS price_move
FROM step
