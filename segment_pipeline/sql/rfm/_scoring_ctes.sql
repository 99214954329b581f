ranked AS (
    -- rank(): equal values share the lowest rank of their group, so they share a score.
    SELECT
        *,
        rank() OVER ({{ partition_by }} ORDER BY recency_days DESC) AS r_rank,
        rank() OVER ({{ partition_by }} ORDER BY frequency) AS f_rank,
        rank() OVER ({{ partition_by }} ORDER BY monetary) AS m_rank
    FROM valued
),
scored AS (
    SELECT
        *,
        CAST(1 + (5 * (r_rank - 1)) // n_customers AS INTEGER) AS r_score,
        CAST(1 + (5 * (f_rank - 1)) // n_customers AS INTEGER) AS f_score,
        CAST(1 + (5 * (m_rank - 1)) // n_customers AS INTEGER) AS m_score
    FROM ranked
),
segment_map AS (
    SELECT
        unnest($map_r::INTEGER[]) AS r_score,
        unnest($map_f::INTEGER[]) AS f_score,
        unnest($map_segment::VARCHAR[]) AS segment
)
