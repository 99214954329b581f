SELECT count(*) FROM (
    SELECT segment, sum(spend_share) AS a, sum(shrunk_share) AS b
    FROM {{ marts.segment_category_preference }} GROUP BY segment
    HAVING max(segment_revenue) > 0
) WHERE abs(a - 1) > ? OR abs(b - 1) > ?
