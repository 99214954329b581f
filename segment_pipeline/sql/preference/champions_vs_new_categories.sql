SELECT item_name AS category, round(champions_share, 4) AS champions_share,
       round(new_share, 4) AS new_share, round(share_difference, 4) AS difference
FROM {{ marts.champions_vs_new_products }} WHERE level = 'category'
ORDER BY share_difference DESC, item_id
