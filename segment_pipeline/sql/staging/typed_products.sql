WITH src AS ({{ source }}),
cleaned AS (
    SELECT
        nullif(trim(product_id, {{ id_pad }}), '') AS product_id,
        coalesce(nullif(trim(product_name), ''), nullif(trim(product_id, {{ id_pad }}), ''))
            AS product_name,
        coalesce(nullif(trim(category), ''), 'Unknown') AS category,
        source_file, source_line,
        CAST(to_json(struct_pack(
            product_id := product_id, product_name := product_name, category := category
        )) AS VARCHAR) AS raw_values
    FROM src
)
SELECT
    *,
    CASE
        WHEN product_id IS NULL THEN 'product_id_missing'
        WHEN regexp_matches(product_id, '{{ invisible }}') THEN 'id_invisible_character'
        WHEN row_number() OVER (PARTITION BY product_id ORDER BY source_line) > 1
            THEN 'duplicate_product_id'
    END AS parse_rule
FROM cleaned
ORDER BY source_line
