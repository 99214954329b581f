-- Streaming statistics of the line amounts; their quantiles: amount_quantile_ranks.sql.
WITH x AS (
    SELECT CAST(amount AS DOUBLE) AS a, ln(1 + CAST(amount AS DOUBLE)) AS v
    FROM {{ staging.transactions }}
)
SELECT
    count(*) AS lines,
    min(a) AS min, max(a) AS max, avg(a) AS mean, stddev_samp(a) AS std,
    min(v) AS log_min, max(v) AS log_max, avg(v) AS log_mean,
    skewness(a) AS skew_raw, skewness(v) AS skew_log1p
FROM x
