WITH {{ pairs_cte }},
recent AS (
    SELECT * FROM pairs ORDER BY from_month DESC LIMIT $baseline_months
),
a AS (
    SELECT p.from_month, s.customer_id, s.recency_days, s.price_segment, c.strategy_class
    FROM recent AS p
    JOIN {{ marts.customer_snapshots }} AS s ON s.snapshot_month = p.from_month
    JOIN {{ strategy_cells }} AS c USING (occupation_group, price_segment)
),
b AS (
    SELECT p.from_month, s.customer_id, s.recency_days, s.price_segment, s.month_orders
    FROM recent AS p JOIN {{ marts.customer_snapshots }} AS s ON s.snapshot_month = p.to_month
),
j AS (
    SELECT a.strategy_class, a.from_month,
           a.recency_days <= $lapse_days AS active_a,
           coalesce(b.recency_days <= $lapse_days, false) AS active_b,
           coalesce(b.month_orders > 0, false) AS bought_b,
           list_position($ranked::VARCHAR[], a.price_segment) AS rank_a,
           list_position($ranked::VARCHAR[], b.price_segment) AS rank_b
    FROM a LEFT JOIN b USING (from_month, customer_id)
),
baseline AS (
    SELECT strategy_class,
           count(DISTINCT from_month) AS months,
           count(*) AS repeat_purchase_trials,
           count(*) FILTER (WHERE bought_b) AS repeat_purchase_successes,
           count(*) FILTER (WHERE active_a) AS stay_active_trials,
           count(*) FILTER (WHERE active_a AND active_b) AS stay_active_successes,
           count(*) FILTER (WHERE rank_a IN (1, 2)) AS price_tier_up_trials,
           count(*) FILTER (WHERE rank_a IN (1, 2) AND rank_b > rank_a)
               AS price_tier_up_successes
    FROM j GROUP BY strategy_class
),
latest AS (
    SELECT c.strategy_class,
           count(*) AS repeat_purchase_available,
           count(*) FILTER (WHERE s.recency_days <= $lapse_days) AS stay_active_available,
           count(*) FILTER (WHERE list_position($ranked::VARCHAR[], s.price_segment) IN (1, 2))
               AS price_tier_up_available
    FROM {{ marts.customer_snapshots }} AS s
    JOIN {{ strategy_cells }} AS c USING (occupation_group, price_segment)
    WHERE s.snapshot_month = (SELECT max(snapshot_month) FROM {{ marts.customer_snapshots }})
    GROUP BY c.strategy_class
)
SELECT coalesce(l.strategy_class, b.strategy_class) AS strategy_class,
       coalesce(b.months, 0) AS months,
       {{ outcome_columns }}
FROM latest AS l FULL OUTER JOIN baseline AS b USING (strategy_class)
ORDER BY 1
