SELECT count(*) FROM (
    SELECT level, segment, sum(revenue_share) AS s
    FROM {{ marts.segment_product_summary }} GROUP BY ALL
) WHERE abs(s - 1) > ?
