-- RFM: the RFM layer's definitions per month (RFM_CUSTOMER_SEGMENTS_SQL): each customer's
-- values over the month's window (month_values_running.sql or month_values_joined.sql), then
-- the layer's scoring per month.
WITH per_customer AS (
    SELECT * FROM {{ month_values_table }}
),
valued AS (
    SELECT
        p.*, m.as_of, m.window_start, m.window_end,
        CAST(date_diff('day', p.last_purchase_date, m.as_of) AS INTEGER) AS recency_days,
        count(*) OVER (PARTITION BY p.snapshot_month) AS n_customers
    FROM per_customer AS p
    JOIN {{ months_table }} AS m USING (snapshot_month)
),
{{ scoring_ctes }},
rfm AS (
    SELECT
        s.snapshot_month, s.customer_id, s.first_purchase_date, s.last_purchase_date,
        s.recency_days, s.frequency, CAST(s.monetary AS DECIMAL(38, 4)) AS monetary,
        s.r_score, s.f_score, s.m_score, s.rf_cell, s.rfm_code, s.segment, s.segment_order,
        s.as_of, s.window_start, s.window_end
    FROM cells AS s
),
-- Behaviour: the behaviour layer's definitions per month (CUSTOMER_BEHAVIOUR_SQL), with the
-- month's occupation groups and category tiers. A customer's profile is one row of
-- staging.customers, the same on every line; the dominant price segment of every month is
-- computed once per run, from running sums (month_price_segments.sql).
profiles AS (
    SELECT * FROM {{ profiles_table }}
),
dominant AS (
    SELECT snapshot_month, customer_id, price_segment
    FROM {{ month_price_segments_table }}
),
this_month AS (
    SELECT order_month AS snapshot_month, customer_id, orders, revenue
    FROM {{ month_orders_table }}
)
-- every customer of a month's RFM window has lines up to its last day, so a profile
SELECT
    r.snapshot_month,
    m.month_end,
    r.customer_id,
    {{ rfm_columns }},
    p.age_band, p.gender, p.occupation, o.occupation_group,
    coalesce(d.price_segment, 'Unknown') AS price_segment,
    p.age_band || ' | ' || p.gender || ' | ' || o.occupation_group || ' | '
        || coalesce(d.price_segment, 'Unknown') AS behavioural_segment,
    coalesce(t.orders, 0) AS month_orders,
    CAST(coalesce(t.revenue, 0) AS DECIMAL(38, 4)) AS month_revenue
FROM rfm AS r
JOIN {{ months_table }} AS m USING (snapshot_month)
JOIN profiles AS p USING (customer_id)
JOIN {{ month_occupations_table }} AS o
    ON o.snapshot_month = r.snapshot_month AND o.occupation = p.occupation
LEFT JOIN dominant AS d USING (snapshot_month, customer_id)
LEFT JOIN this_month AS t USING (snapshot_month, customer_id)
