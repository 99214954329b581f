SELECT ln(1 + CAST(amount AS DOUBLE)) AS v
FROM {{ staging.transactions }}
ORDER BY hash(line_id), line_id
LIMIT ?
