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
),
cells AS (
    -- the scores' cell, code and segment (the map's), for every user of these CTEs
    SELECT
        s.*,
        'R' || s.r_score || 'F' || s.f_score AS rf_cell,
        CAST(s.r_score AS VARCHAR) || s.f_score || s.m_score AS rfm_code,
        m.segment,
        CAST(list_position($segments::VARCHAR[], m.segment) AS INTEGER) AS segment_order
    FROM scored AS s
    LEFT JOIN segment_map AS m USING (r_score, f_score)
)
