SELECT {{ cluster_counts }}
FROM (SELECT ln(1 + CAST(amount AS DOUBLE)) AS v FROM {{ staging.transactions }})
