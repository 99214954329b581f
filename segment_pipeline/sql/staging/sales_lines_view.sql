CREATE OR REPLACE VIEW {{ staging.sales_lines }} AS
SELECT
    l.*,
    coalesce(c.gender, 'Unknown') AS gender,
    coalesce(c.age_band, 'Unknown') AS age_band,
    coalesce(c.occupation, 'Unknown') AS occupation,
    coalesce(c.marital_status, 'Unknown') AS marital_status,
    coalesce(c.city_category, 'Unknown') AS city_category
FROM {{ staging.product_lines }} AS l
LEFT JOIN {{ staging.customers }} AS c USING (customer_id)
