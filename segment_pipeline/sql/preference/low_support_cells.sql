SELECT count(*) FROM {{ marts.segment_category_preference }} WHERE low_support
