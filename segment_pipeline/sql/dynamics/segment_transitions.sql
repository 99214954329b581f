-- The pairs of consecutive months from $first_from_month to $last_from_month (the asset
-- inserts a few small pairs, or one large pair, at a time: joining all months at once held
-- every snapshot row in one full outer join). The WHERE on snapshot_month repeats the join's
-- condition as a constant range, so that the scans skip the other months' row groups.
WITH {{ pairs_cte }},
pair AS (
    SELECT from_month, to_month FROM pairs
    WHERE from_month BETWEEN $first_from_month AND $last_from_month
),
a AS (
    SELECT p.from_month, p.to_month, s.*
    FROM pair AS p JOIN {{ marts.customer_snapshots }} AS s ON s.snapshot_month = p.from_month
    WHERE s.snapshot_month BETWEEN $first_from_month AND $last_from_month
),
b AS (
    SELECT p.from_month, p.to_month, s.*
    FROM pair AS p JOIN {{ marts.customer_snapshots }} AS s ON s.snapshot_month = p.to_month
    WHERE s.snapshot_month BETWEEN $first_from_month + INTERVAL 1 MONTH
        AND $last_from_month + INTERVAL 1 MONTH
),
j AS (
    SELECT
        coalesce(a.from_month, b.from_month) AS from_month,
        coalesce(a.to_month, b.to_month) AS to_month,
        a.customer_id IS NOT NULL AS in_from,
        b.customer_id IS NOT NULL AS in_to,
        a.segment AS seg_a, b.segment AS seg_b,
        a.segment_order AS seg_order_a, b.segment_order AS seg_order_b,
        a.price_segment AS tier_a, b.price_segment AS tier_b,
        a.recency_days <= $lapse_days AS active_a,
        b.recency_days <= $lapse_days AS active_b,
        CAST(coalesce(a.month_revenue, 0) AS DOUBLE) AS revenue_a,
        CAST(coalesce(b.month_revenue, 0) AS DOUBLE) AS revenue_b
    FROM a FULL OUTER JOIN b ON a.from_month = b.from_month AND a.customer_id = b.customer_id
),
states AS (
    SELECT from_month, to_month, 'rfm_segment' AS dimension,
           CASE WHEN in_from THEN seg_a ELSE '(entered)' END AS from_state,
           CASE WHEN in_to THEN seg_b ELSE '(left)' END AS to_state,
           CASE WHEN in_from THEN seg_order_a ELSE 0 END AS from_order,
           CASE WHEN in_to THEN seg_order_b ELSE 99 END AS to_order,
           CASE WHEN NOT in_from THEN 'entered' WHEN NOT in_to THEN 'left'
                WHEN seg_a = seg_b THEN 'same' ELSE 'moved' END AS direction,
           revenue_a, revenue_b
    FROM j
    UNION ALL
    SELECT from_month, to_month, 'price_tier',
           CASE WHEN in_from THEN tier_a ELSE '(entered)' END,
           CASE WHEN in_to THEN tier_b ELSE '(left)' END,
           CASE WHEN in_from THEN list_position($tiers::VARCHAR[], tier_a) ELSE 0 END,
           CASE WHEN in_to THEN list_position($tiers::VARCHAR[], tier_b) ELSE 99 END,
           CASE WHEN NOT in_from THEN 'entered' WHEN NOT in_to THEN 'left'
                WHEN tier_a = tier_b THEN 'same'
                WHEN list_position($ranked::VARCHAR[], tier_a) IS NULL
                  OR list_position($ranked::VARCHAR[], tier_b) IS NULL THEN 'moved'
                WHEN list_position($ranked::VARCHAR[], tier_b)
                     > list_position($ranked::VARCHAR[], tier_a) THEN 'up'
                ELSE 'down' END,
           revenue_a, revenue_b
    FROM j
    UNION ALL
    SELECT from_month, to_month, 'activity',
           CASE WHEN NOT in_from THEN '(entered)' WHEN active_a THEN 'active' ELSE 'lapsed' END,
           CASE WHEN NOT in_to THEN '(left)' WHEN active_b THEN 'active' ELSE 'lapsed' END,
           CASE WHEN NOT in_from THEN 0 WHEN active_a THEN 1 ELSE 2 END,
           CASE WHEN NOT in_to THEN 99 WHEN active_b THEN 1 ELSE 2 END,
           CASE WHEN NOT in_from THEN 'entered' WHEN NOT in_to THEN 'left'
                WHEN active_a = active_b THEN 'same'
                WHEN active_a THEN 'lapsed' ELSE 'reactivated' END,
           revenue_a, revenue_b
    FROM j
),
cells AS (
    SELECT from_month, to_month, dimension, from_state, to_state,
           min(from_order) AS from_order, min(to_order) AS to_order, min(direction) AS direction,
           count(*) AS customers,
           sum(revenue_a) AS revenue_from_month, sum(revenue_b) AS revenue_to_month
    FROM states
    GROUP BY ALL
)
SELECT from_month, to_month, dimension, from_state, to_state,
       CAST(from_order AS INTEGER) AS from_order, CAST(to_order AS INTEGER) AS to_order,
       direction, customers,
       sum(customers) OVER (PARTITION BY from_month, dimension, from_state) AS row_customers,
       customers / sum(customers) OVER (PARTITION BY from_month, dimension, from_state)
           AS row_share,
       revenue_from_month, revenue_to_month, CAST($lapse_days AS INTEGER) AS lapse_days
FROM cells
ORDER BY from_month, dimension, from_order, from_state, to_order, to_state
