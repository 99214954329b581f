SELECT dimension, direction, sum(customers) AS customers,
       sum(revenue_to_month) AS revenue_to_month
FROM {{ marts.segment_transitions }}
WHERE from_month = (SELECT max(from_month) FROM {{ marts.segment_transitions }} AS latest)
GROUP BY ALL ORDER BY dimension, direction
