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
