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
        s.r_score, s.f_score, s.m_score,
        'R' || s.r_score || 'F' || s.f_score AS rf_cell,
        CAST(s.r_score AS VARCHAR) || s.f_score || s.m_score AS rfm_code,
        g.segment,
        CAST(list_position($segments::VARCHAR[], g.segment) AS INTEGER) AS segment_order,
        s.as_of, s.window_start, s.window_end
    FROM scored AS s
    LEFT JOIN segment_map AS g USING (r_score, f_score)
),
-- Behaviour: the behaviour layer's definitions per month (CUSTOMER_BEHAVIOUR_SQL), with the
-- month's occupation groups and category tiers. A customer's profile is one row of
-- staging.customers, the same on every line; only the dominant price segment needs the
-- spend per category up to each month (summed per calendar month: every snapshot's last day
-- is a month's last day).
profiles AS (
    SELECT * FROM {{ profiles_table }}
),
category_months AS (
    SELECT * FROM {{ category_months_table }}
),
tier_spend AS (
    -- per month and customer: the exact spend per price tier up to the month's end, with that
    -- month's tiers (NULL: no line in the tier)
    SELECT
        m.snapshot_month, c.customer_id,
        sum(c.amount) FILTER (WHERE t.price_segment = 'Price_High') AS high,
        sum(c.amount) FILTER (WHERE t.price_segment = 'Price_Mid') AS mid,
        sum(c.amount) FILTER (WHERE t.price_segment = 'Price_Low') AS low
    FROM {{ months_table }} AS m
    JOIN category_months AS c ON c.order_month <= m.snapshot_month
    JOIN {{ month_tiers_table }} AS t
        ON t.snapshot_month = m.snapshot_month AND t.category = c.category
    WHERE t.price_segment <> 'Unknown'
    GROUP BY m.snapshot_month, c.customer_id
),
dominant AS (
    -- the behaviour layer's rule (DOMINANT_PRICE_SEGMENT_SQL)
    SELECT snapshot_month, customer_id, {{ dominant_price_segment }} AS price_segment
    FROM tier_spend
),
behaviour AS (
    -- every customer of a month's RFM window has lines up to its last day
    SELECT r.snapshot_month, r.customer_id, p.age_band, p.gender, p.occupation,
           o.occupation_group
    FROM rfm AS r
    JOIN profiles AS p USING (customer_id)
    JOIN {{ month_occupations_table }} AS o
        ON o.snapshot_month = r.snapshot_month AND o.occupation = p.occupation
),
this_month AS (
    SELECT order_month AS snapshot_month, customer_id, orders, revenue
    FROM {{ month_orders_table }}
)
SELECT
    r.snapshot_month,
    m.month_end,
    r.customer_id,
    {{ rfm_columns }},
    b.age_band, b.gender, b.occupation, b.occupation_group,
    coalesce(d.price_segment, 'Unknown') AS price_segment,
    b.age_band || ' | ' || b.gender || ' | ' || b.occupation_group || ' | '
        || coalesce(d.price_segment, 'Unknown') AS behavioural_segment,
    coalesce(t.orders, 0) AS month_orders,
    CAST(coalesce(t.revenue, 0) AS DECIMAL(38, 4)) AS month_revenue
FROM rfm AS r
JOIN {{ months_table }} AS m USING (snapshot_month)
JOIN behaviour AS b USING (snapshot_month, customer_id)
LEFT JOIN dominant AS d USING (snapshot_month, customer_id)
LEFT JOIN this_month AS t USING (snapshot_month, customer_id)
