ranked AS (
    -- rank(): equal values share the lowest rank of their group, so they share a score (the
    -- monthly snapshots compute the same numbers per month: dynamics/_month_ranked_cte.sql).
    SELECT
        *,
        rank() OVER (ORDER BY recency_days DESC) AS r_rank,
        rank() OVER (ORDER BY frequency) AS f_rank,
        rank() OVER (ORDER BY monetary) AS m_rank
    FROM valued
)
