WITH latest AS (SELECT max(snapshot_month) AS month FROM {{ marts.customer_snapshots }}),
seq AS (
    SELECT s.customer_id, s.snapshot_month, s.segment, s.price_segment,
           lag(s.segment) OVER w AS prev_segment,
           lag(s.price_segment) OVER w AS prev_tier
    FROM {{ marts.customer_snapshots }} AS s
    WINDOW w AS (PARTITION BY s.customer_id ORDER BY s.snapshot_month)
),
seg_moves AS (
    SELECT customer_id, snapshot_month, coalesce(prev_segment, '(entered)') AS previous_segment
    FROM seq WHERE prev_segment IS DISTINCT FROM segment
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY snapshot_month DESC) = 1
),
tier_moves AS (
    SELECT customer_id, snapshot_month, coalesce(prev_tier, '(entered)') AS previous_tier,
           CASE WHEN prev_tier IS NULL THEN 'entered'
                WHEN list_position($ranked::VARCHAR[], prev_tier) IS NULL
                  OR list_position($ranked::VARCHAR[], price_segment) IS NULL THEN 'changed'
                WHEN list_position($ranked::VARCHAR[], price_segment)
                     > list_position($ranked::VARCHAR[], prev_tier) THEN 'up'
                ELSE 'down' END AS price_move
    FROM seq WHERE prev_tier IS DISTINCT FROM price_segment
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY snapshot_month DESC) = 1
),
months_in AS (
    SELECT s.customer_id, count(*) AS months
    FROM {{ marts.customer_snapshots }} AS s JOIN seg_moves AS m USING (customer_id)
    WHERE s.snapshot_month >= m.snapshot_month
    GROUP BY s.customer_id
)
SELECT
    s.customer_id, s.snapshot_month AS latest_month, s.segment,
    m.previous_segment, m.snapshot_month AS segment_since,
    CAST(n.months AS INTEGER) AS months_in_segment,
    s.price_segment, t.previous_tier AS previous_price_segment,
    t.snapshot_month AS price_segment_since, t.price_move,
    s.recency_days, s.recency_days <= $lapse_days AS active,
    s.monetary, s.month_revenue
FROM {{ marts.customer_snapshots }} AS s
JOIN latest ON s.snapshot_month = latest.month
JOIN seg_moves AS m USING (customer_id)
JOIN tier_moves AS t USING (customer_id)
JOIN months_in AS n USING (customer_id)
ORDER BY s.customer_id
