-- One row per predicted customer with its three labels, joined once and kept (MATERIALIZED: it
-- is read three times). Joining the predictions anew in each of the three dimensions held
-- all their hash tables at once: out of memory with 5.4M customers (100M lines); this way
-- 3.7 s there. A customer missing from a segment table is Unassigned below.
WITH per_customer AS MATERIALIZED (
    SELECT
        p.customer_id, p.clv, p.p_alive, p.expected_purchases, p.expected_spend, i.total_spend,
        r.segment AS rfm_segment, r.segment_order AS rfm_order,
        s.segment AS behavioural_segment, s.sales_rank, s.strategy_class, k.class_order
    FROM {{ marts.clv_customer_predictions }} AS p
    INNER JOIN {{ marts.clv_model_inputs }} AS i USING (customer_id)
    LEFT JOIN {{ marts.rfm_customer_segments }} AS r USING (customer_id)
    LEFT JOIN {{ marts.customer_behaviour }} AS c USING (customer_id)
    LEFT JOIN {{ marts.segment_strategy }} AS s
        ON s.age_band = c.age_band AND s.gender = c.gender
       AND s.occupation_group = c.occupation_group AND s.price_segment = c.price_segment
    LEFT JOIN {{ marts.strategy_summary }} AS k ON k.strategy_class = s.strategy_class
),
labelled AS (
    SELECT 'rfm_segment' AS dimension, coalesce(rfm_segment, 'Unassigned') AS segment,
           coalesce(rfm_order, 999) AS segment_order, *
    FROM per_customer
    UNION ALL
    SELECT 'behavioural_segment', coalesce(behavioural_segment, 'Unassigned'),
           coalesce(sales_rank, 999), *
    FROM per_customer
    UNION ALL
    SELECT 'strategy_class', coalesce(strategy_class, 'Unassigned'),
           coalesce(class_order, 999), *
    FROM per_customer
),
-- Sums in DECIMAL(38, 12), which add exactly whatever the order: DuckDB's parallel aggregation
-- adds DOUBLEs in thread order (two runs differed in the last digit). Summing in customer order
-- instead (sum(x ORDER BY customer_id)) held every row of a group in memory: out of memory
-- with 5.4M customers (100M lines). The values round to 1e-12 first.
exact AS (
    SELECT
        dimension, segment, segment_order, clv,
        CAST(clv AS DECIMAL(38, 12)) AS clv_exact,
        CAST(p_alive AS DECIMAL(38, 12)) AS p_alive_exact,
        CAST(expected_purchases AS DECIMAL(38, 12)) AS purchases_exact,
        CAST(expected_spend AS DECIMAL(38, 12)) AS spend_exact,
        CAST(total_spend AS DECIMAL(38, 12)) AS total_spend_exact
    FROM labelled
)
SELECT
    dimension, segment, CAST(min(segment_order) AS INTEGER) AS segment_order,
    count(*) AS customers,
    CAST(sum(clv_exact) AS DOUBLE) AS total_clv,
    CAST(sum(clv_exact) / count(*) AS DOUBLE) AS mean_clv,
    CAST(median(clv) AS DOUBLE) AS median_clv,
    CAST(sum(clv_exact) AS DOUBLE) / nullif(CAST(sum(sum(clv_exact)) OVER (
        PARTITION BY dimension
    ) AS DOUBLE), 0) AS clv_share,
    CAST(sum(p_alive_exact) / count(*) AS DOUBLE) AS mean_p_alive,
    CAST(sum(purchases_exact) AS DOUBLE) AS expected_purchases,
    CAST(sum(spend_exact) / count(*) AS DOUBLE) AS mean_expected_spend,
    CAST(sum(total_spend_exact) AS DOUBLE) AS historic_spend
FROM exact
GROUP BY dimension, segment
ORDER BY dimension, segment_order, segment
