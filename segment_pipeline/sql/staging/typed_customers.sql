WITH src AS ({{ source }}),
cleaned AS (
    SELECT
        nullif(trim(customer_id, {{ id_pad }}), '') AS customer_id,
        -- m/f are M/F; other values (words, other codes) are kept as the source has them
        coalesce(nullif(CASE WHEN length(trim(gender)) = 1 THEN upper(trim(gender))
                             ELSE trim(gender) END, ''), 'Unknown') AS gender,
        coalesce(nullif(trim(age_band), ''), 'Unknown') AS age_band,
        coalesce(nullif(trim(occupation), ''), 'Unknown') AS occupation,
        coalesce(nullif(trim(marital_status), ''), 'Unknown') AS marital_status,
        coalesce(nullif(trim(city_category), ''), 'Unknown') AS city_category,
        source_file, source_line,
        CAST(to_json(struct_pack(
            customer_id := customer_id, gender := gender, age_band := age_band,
            occupation := occupation, marital_status := marital_status,
            city_category := city_category
        )) AS VARCHAR) AS raw_values
    FROM src
)
SELECT
    *,
    CASE
        WHEN customer_id IS NULL THEN 'customer_id_missing'
        WHEN regexp_matches(customer_id, '{{ invisible }}') THEN 'id_invisible_character'
        WHEN row_number() OVER (PARTITION BY customer_id ORDER BY source_line) > 1
            THEN 'duplicate_customer_id'
    END AS parse_rule
FROM cleaned
ORDER BY source_line
