WITH p AS (
    SELECT p.*, i.total_spend FROM {{ marts.clv_customer_predictions }} AS p
    JOIN {{ marts.clv_model_inputs }} AS i USING (customer_id)
),
-- each customer's behavioural segment and its strategy class (none: Unassigned below)
classed AS (
    SELECT c.customer_id, s.segment, s.sales_rank, s.strategy_class
    FROM {{ marts.customer_behaviour }} AS c
    LEFT JOIN {{ marts.segment_strategy }} AS s
        ON s.age_band = c.age_band AND s.gender = c.gender
       AND s.occupation_group = c.occupation_group AND s.price_segment = c.price_segment
),
labelled AS (
    SELECT 'rfm_segment' AS dimension, coalesce(r.segment, 'Unassigned') AS segment,
           coalesce(r.segment_order, 999) AS segment_order, p.*
    FROM p LEFT JOIN {{ marts.rfm_customer_segments }} AS r USING (customer_id)
    UNION ALL
    SELECT 'behavioural_segment', coalesce(b.segment, 'Unassigned'),
           coalesce(b.sales_rank, 999), p.*
    FROM p LEFT JOIN classed AS b USING (customer_id)
    UNION ALL
    SELECT 'strategy_class', coalesce(b.strategy_class, 'Unassigned'),
           coalesce(k.class_order, 999), p.*
    FROM p
    LEFT JOIN classed AS b USING (customer_id)
    LEFT JOIN {{ marts.strategy_summary }} AS k USING (strategy_class)
)
-- Sums of DOUBLE in a fixed order (by customer, then by segment): DuckDB's parallel
-- aggregation otherwise adds in thread order, and two runs differed in the last digit.
SELECT
    dimension, segment, CAST(min(segment_order) AS INTEGER) AS segment_order,
    count(*) AS customers,
    sum(clv ORDER BY customer_id) AS total_clv,
    avg(clv ORDER BY customer_id) AS mean_clv,
    CAST(median(clv) AS DOUBLE) AS median_clv,
    sum(clv ORDER BY customer_id) / nullif(sum(sum(clv ORDER BY customer_id)) OVER (
        PARTITION BY dimension ORDER BY segment
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ), 0) AS clv_share,
    avg(p_alive ORDER BY customer_id) AS mean_p_alive,
    sum(expected_purchases ORDER BY customer_id) AS expected_purchases,
    avg(expected_spend ORDER BY customer_id) AS mean_expected_spend,
    sum(total_spend ORDER BY customer_id) AS historic_spend
FROM labelled
GROUP BY dimension, segment
ORDER BY dimension, segment_order, segment
