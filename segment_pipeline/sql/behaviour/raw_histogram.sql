SELECT bin, count(*) AS lines
FROM (
    SELECT CASE WHEN a > ? THEN -1
                ELSE least(CAST(floor(a / ?) AS INTEGER), ? - 1) END AS bin
    FROM (SELECT CAST(amount AS DOUBLE) AS a FROM {{ staging.transactions }})
)
GROUP BY bin
ORDER BY bin
