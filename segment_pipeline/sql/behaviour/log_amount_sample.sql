SELECT ln(1 + CAST(amount AS DOUBLE)) AS v
FROM {{ staging.sales_lines }}
ORDER BY hash(line_id), line_id
LIMIT ?
