SELECT * FROM {{ marts.segment_transitions }}
WHERE from_month = (SELECT max(from_month) FROM {{ marts.segment_transitions }} AS latest)
ORDER BY dimension, from_order, to_order
