SELECT * FROM {{ marts.purchase_distribution }}
WHERE measure NOT IN ('histogram_raw', 'histogram_log1p')
