CASE
    WHEN prev_tier IS NULL THEN 'entered'
    WHEN
        list_position($ranked::VARCHAR[], prev_tier) IS NULL
        OR list_position($ranked::VARCHAR[], price_segment) IS NULL
        THEN 'changed'
    WHEN
        list_position($ranked::VARCHAR[], price_segment)
        > list_position($ranked::VARCHAR[], prev_tier)
        THEN 'up'
    ELSE 'down'
END
