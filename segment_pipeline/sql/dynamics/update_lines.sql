-- The sale lines up to $last_day of the customers a month updated by a new day recomputes,
-- with the columns of the snapshots' copy (stage_lines.sql), read from the staged lines
-- filtered before the joins to the masters (behaviour/changed_customer_lines.sql).
SELECT
    l.customer_id, l.order_id, l.order_ts, l.category, l.amount, l.age_band, l.gender,
    l.occupation
FROM ({{ update_customer_lines }}) AS l
WHERE CAST(l.order_ts AS DATE) <= CAST($last_day AS DATE)
