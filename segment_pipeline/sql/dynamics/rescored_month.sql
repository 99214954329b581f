-- One month of customer_snapshots from rows whose every column but the scores is right:
-- the update's customers recomputed from their own lines (scored among themselves) and the
-- other customers' stored rows of $month. The RFM layer's scoring (logic/rfm.py
-- rfm_scoring_ctes: ranks over every customer of the month) then scores them all again, and
-- the map gives each cell its segment, as in the layer.
WITH month_rows AS (
    SELECT * FROM {{ recomputed }}
    UNION ALL
    SELECT * FROM {{ marts.customer_snapshots }}
    WHERE
        snapshot_month = $month
        AND customer_id NOT IN (SELECT c.customer_id FROM {{ customers }} AS c)
),

valued AS (
    SELECT
        * EXCLUDE ({{ scored_columns }}),
        count(*) OVER () AS n_customers
    FROM month_rows
),

{{ scoring_ctes }}

SELECT {{ columns }}
FROM cells
