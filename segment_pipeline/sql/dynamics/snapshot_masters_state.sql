-- What the customer and product masters were staged from, and when: a restaged master may
-- give a customer other demographics or a line another category.
SELECT coalesce(string_agg(entity || '=' || input_key || '@' || CAST(staged_at AS VARCHAR), ';'
                           ORDER BY entity), '')
FROM {{ staging.master_loads }}
