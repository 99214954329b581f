CREATE OR REPLACE TEMP TABLE {{ profiles_table }} AS
SELECT customer_id, min(age_band) AS age_band, min(gender) AS gender,
       min(occupation) AS occupation
FROM {{ lines_table }}
GROUP BY customer_id
