-- One digest of everything customer_behaviour.sql reads besides the sale lines: the customers'
-- demographics, the products' categories (a line without its own category takes its
-- product's), each occupation's group and each category's price segment (not their statistics,
-- which move with every day). When it changes, every customer may change: the table is
-- written whole.
SELECT
    (SELECT CAST(count(*) AS VARCHAR) || ':' || coalesce(CAST(sum(hash(
        customer_id, gender, age_band, occupation
    )) AS VARCHAR), '') FROM {{ staging.customers }})
    || '|'
    || (SELECT CAST(count(*) AS VARCHAR) || ':'
        || coalesce(CAST(sum(hash(product_id, category)) AS VARCHAR), '')
        FROM {{ staging.products }})
    || '|'
    || (SELECT CAST(count(*) AS VARCHAR) || ':'
        || coalesce(CAST(sum(hash(occupation, occupation_group)) AS VARCHAR), '')
        FROM {{ marts.occupation_groups }})
    || '|'
    || (SELECT CAST(count(*) AS VARCHAR) || ':'
        || coalesce(CAST(sum(hash(category, price_segment)) AS VARCHAR), '')
        FROM {{ marts.category_price_segments }})
        AS digest
