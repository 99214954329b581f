SELECT bin, count(*) AS lines
FROM (
    SELECT least(greatest(CAST(floor((ln(1 + CAST(amount AS DOUBLE)) - ?) / ?) AS INTEGER), 0),
                 ? - 1) AS bin
    FROM {{ staging.transactions }}
)
GROUP BY bin
ORDER BY bin
