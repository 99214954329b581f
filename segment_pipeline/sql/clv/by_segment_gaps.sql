SELECT s.dimension, sum(s.customers) - max(t.n) AS customer_gap,
       abs(sum(s.total_clv) - max(t.clv)) AS clv_gap, max(t.clv) AS clv_total
FROM {{ marts.clv_by_segment }} AS s,
    (SELECT count(*) AS n, coalesce(sum(clv), 0) AS clv
     FROM {{ marts.clv_customer_predictions }}) AS t
GROUP BY s.dimension ORDER BY s.dimension
