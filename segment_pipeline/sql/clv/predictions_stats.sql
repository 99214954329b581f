-- The predictions asset's metadata and checks over the stored rows (clv.py). A prediction is
-- complete when it is a finite number >= 0: NULL and NaN are not (bool_and alone skips NULL).
SELECT
    count(*) AS rows,
    (SELECT count(*) FROM {{ marts.clv_model_inputs }}) AS inputs,
    count(DISTINCT customer_id) AS customers,
    coalesce(bool_and(coalesce(p_alive BETWEEN 0 AND 1, false)), true) AS p_alive_in_unit,
    coalesce(bool_and(coalesce(
        isfinite(p_alive) AND p_alive >= 0
        AND isfinite(expected_purchases) AND expected_purchases >= 0
        AND isfinite(expected_spend) AND expected_spend >= 0
        AND isfinite(clv) AND clv >= 0,
        false
    )), true) AS complete,
    min(p_alive) AS min_p_alive,
    max(p_alive) AS max_p_alive,
    sum(clv) AS total_clv,
    avg(clv) AS mean_clv,
    avg(p_alive) AS mean_p_alive,
    sum(expected_purchases) AS expected_purchases,
    min(spend_basis) AS spend_basis,
    count(*) FILTER (WHERE frequency > 0 AND NOT coalesce(monetary > 0, false))
        AS non_positive_repeat_spend
FROM {{ marts.clv_customer_predictions }}
