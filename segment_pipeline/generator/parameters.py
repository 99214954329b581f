"""The generator's tables: defect rules, the customer mix (demographic shares,
occupation spend tiers), the product categories (price ranges, popularity, returns, name
parts), customer lifecycles and shop hours. Everything here is data; the draws are in
`catalogue`, `customers` and `days`."""

from __future__ import annotations

import re

#: Rules a defective line breaks (exactly one each), in report order.
DEFECT_RULES: tuple[str, ...] = (
    "missing_customer_id",
    "negative_unit_price",
    "non_numeric_unit_price",
    "malformed_order_ts",
    "zero_quantity",
)
#: Share of sale lines made defective (spread uniformly over days and rules).
DEFECT_RATE = 0.005

AGE_BANDS: tuple[str, ...] = ("0-17", "18-25", "26-35", "36-45", "46-50", "51-55", "55+")
# Customer shares per age band / occupation / city as in the Black Friday sample.
AGE_P = (0.034, 0.223, 0.339, 0.198, 0.083, 0.074, 0.049)
OCC_P = (
    0.117, 0.076, 0.044, 0.037, 0.128, 0.014, 0.032, 0.101, 0.004, 0.015, 0.034,
    0.029, 0.080, 0.014, 0.037, 0.017, 0.039, 0.098, 0.017, 0.017, 0.052,
)  # fmt: skip
CITY_P = (0.233, 0.263, 0.504)
MALE_P = 0.73
# Occupation spend tiers (-1 low, 0 mid, +1 high); codes carry no order, as in the original.
OCC_TIER = (0, 0, -1, -1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, -1, 1, -1, 1, -1, -1, -1)

# name, base price range in currency units (log-uniform), extra quantity (Poisson mean),
# base popularity, number of products, return probability per line.
CATEGORIES: tuple[tuple[str, float, float, float, float, int, float], ...] = (
    ("Groceries", 1.5, 12.0, 1.2, 3.0, 40, 0.003),
    ("Snacks & Beverages", 1.0, 9.0, 1.4, 2.2, 32, 0.003),
    ("Household Supplies", 2.5, 22.0, 0.6, 1.6, 26, 0.006),
    ("Personal Care", 3.0, 28.0, 0.4, 1.4, 28, 0.008),
    ("Beauty", 7.0, 70.0, 0.3, 1.2, 30, 0.015),
    ("Health & Wellness", 5.0, 55.0, 0.3, 0.9, 22, 0.010),
    ("Books", 8.0, 35.0, 0.15, 1.0, 36, 0.010),
    ("Stationery & Office", 2.0, 30.0, 0.5, 0.7, 20, 0.008),
    ("Pet Supplies", 4.0, 65.0, 0.4, 0.6, 18, 0.010),
    ("Toys & Games", 8.0, 90.0, 0.15, 0.7, 30, 0.020),
    ("Video Games", 20.0, 80.0, 0.05, 0.6, 24, 0.025),
    ("Clothing", 12.0, 130.0, 0.2, 1.3, 38, 0.050),
    ("Shoes", 35.0, 220.0, 0.05, 0.7, 26, 0.060),
    ("Sports & Outdoors", 15.0, 300.0, 0.05, 0.6, 28, 0.025),
    ("Home Decor", 12.0, 250.0, 0.1, 0.6, 30, 0.020),
    ("Kitchen & Dining", 10.0, 320.0, 0.1, 0.6, 32, 0.020),
    ("Garden & DIY", 8.0, 350.0, 0.1, 0.5, 24, 0.015),
    ("Electronics", 60.0, 900.0, 0.0, 0.6, 34, 0.030),
    ("Home Appliances", 90.0, 1200.0, 0.0, 0.35, 20, 0.025),
    ("Jewelry & Watches", 150.0, 2000.0, 0.0, 0.3, 22, 0.020),
)
PREMIUM_SHARE = 0.2  # top share of products per category priced clearly higher

# Category affinity shifts (log weights) by age band and gender.
AGE_SHIFT: dict[str, dict[str, float]] = {
    "0-17": {
        "Toys & Games": 1.4, "Video Games": 1.2, "Snacks & Beverages": 0.6, "Books": 0.4,
        "Stationery & Office": 0.7, "Jewelry & Watches": -1.5, "Garden & DIY": -1.2,
        "Home Appliances": -1.2, "Kitchen & Dining": -0.8, "Household Supplies": -0.6,
        "Home Decor": -0.6, "Pet Supplies": -0.3,
    },
    "18-25": {
        "Video Games": 0.7, "Clothing": 0.5, "Shoes": 0.5, "Electronics": 0.2, "Beauty": 0.3,
        "Garden & DIY": -0.6, "Home Appliances": -0.4,
    },
    "26-35": {"Electronics": 0.25, "Home Decor": 0.2, "Kitchen & Dining": 0.1, "Shoes": 0.1},
    "36-45": {
        "Home Decor": 0.3, "Kitchen & Dining": 0.3, "Toys & Games": 0.4, "Garden & DIY": 0.2,
        "Home Appliances": 0.2,
    },
    "46-50": {"Garden & DIY": 0.4, "Kitchen & Dining": 0.2, "Health & Wellness": 0.3},
    "51-55": {"Garden & DIY": 0.5, "Health & Wellness": 0.5, "Books": 0.3, "Video Games": -0.5},
    "55+": {
        "Health & Wellness": 0.9, "Books": 0.7, "Garden & DIY": 0.6, "Video Games": -1.2,
        "Shoes": -0.3, "Toys & Games": 0.2,
    },
}  # fmt: skip
GENDER_SHIFT: dict[str, dict[str, float]] = {
    "F": {
        "Beauty": 1.0, "Clothing": 0.5, "Jewelry & Watches": 0.4, "Personal Care": 0.3,
        "Home Decor": 0.3, "Video Games": -0.6, "Electronics": -0.3, "Sports & Outdoors": -0.3,
    },
    "M": {
        "Electronics": 0.35, "Sports & Outdoors": 0.4, "Video Games": 0.3, "Garden & DIY": 0.3,
        "Beauty": -0.7, "Clothing": -0.2,
    },
}  # fmt: skip

# Per-category product name parts: (head words, nouns, variants). A name is
# "<head> <noun>[ <variant>]"; premium products use a premium head word.
NAME_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "Groceries": (
        ("Organic", "Fresh", "Farmhouse", "Wholegrain", "Classic", "Golden", "Italian"),
        ("Green Tea", "Basmati Rice", "Pasta", "Olive Oil", "Coffee Beans", "Oat Milk",
         "Honey", "Peanut Butter", "Granola", "Tomato Sauce", "Cheddar", "Eggs"),
        ("250g", "500g", "1kg", "Family Pack", "12 pcs"),
    ),
    "Snacks & Beverages": (
        ("Crunchy", "Sparkling", "Spicy", "Sea Salt", "Dark", "Tropical", "Zesty"),
        ("Potato Chips", "Mineral Water", "Cola", "Chocolate Bar", "Trail Mix", "Iced Tea",
         "Pretzels", "Energy Drink", "Cookies", "Popcorn"),
        ("6-Pack", "Multipack", "1.5L", "200g", "Mini"),
    ),
    "Household Supplies": (
        ("Eco", "Ultra", "Fresh", "Lemon", "Lavender", "Heavy-Duty"),
        ("Dish Soap", "Laundry Detergent", "Paper Towels", "Trash Bags", "Sponges",
         "Toilet Paper", "Surface Cleaner", "Fabric Softener"),
        ("2L", "24 Rolls", "Refill", "Value Pack", "3-Pack"),
    ),
    "Personal Care": (
        ("Gentle", "Mint", "Sensitive", "Daily", "Herbal", "Fresh"),
        ("Toothpaste", "Shampoo", "Body Wash", "Deodorant", "Hand Soap", "Razor",
         "Electric Toothbrush", "Conditioner"),
        ("250ml", "Travel Size", "Twin Pack", "Refill"),
    ),
    "Beauty": (
        ("Radiant", "Velvet", "Hydra", "Matte", "Glow", "Silk", "Rose"),
        ("Face Serum", "Lipstick", "Moisturizer", "Mascara", "Eyeshadow Palette",
         "Foundation", "Night Cream", "Perfume", "Nail Polish"),
        ("30ml", "50ml", "Set", "Mini"),
    ),
    "Health & Wellness": (
        ("Daily", "Active", "Pure", "Natural", "Vital", "Herbal"),
        ("Multivitamin", "Omega-3 Capsules", "Protein Powder", "Yoga Mat", "Heating Pad",
         "Digital Thermometer", "Sleep Aid", "Fitness Tracker Band"),
        ("60 caps", "120 caps", "1kg", "Pro"),
    ),
    "Books": (
        ("The Silent", "A Brief", "The Lost", "Modern", "The Complete", "Midnight", "Hidden"),
        ("Garden", "History of Time", "Cookbook", "Thriller", "Guide to Investing",
         "Poetry Collection", "Atlas", "Detective Stories", "Fantasy Saga", "Memoir"),
        ("Paperback", "Hardcover", "Illustrated", "2nd Edition"),
    ),
    "Stationery & Office": (
        ("Classic", "Smooth", "Recycled", "Executive", "Colour", "Compact"),
        ("Notebook", "Gel Pens", "Desk Organizer", "Sticky Notes", "Stapler",
         "Fountain Pen", "Planner", "Highlighters"),
        ("A5", "A4", "12-Pack", "Set"),
    ),
    "Pet Supplies": (
        ("Happy", "Natural", "Cozy", "Grain-Free", "Active", "Premium Cut"),
        ("Dog Food", "Cat Litter", "Chew Toy", "Pet Bed", "Cat Tree", "Leash", "Fish Flakes",
         "Bird Seed"),
        ("2kg", "10kg", "Large", "Small"),
    ),
    "Toys & Games": (
        ("Super", "Magic", "Junior", "Classic", "Adventure", "Galaxy", "Rainbow"),
        ("Building Blocks", "Puzzle", "Board Game", "Plush Bear", "RC Car", "Doll House",
         "Card Game", "Science Kit", "Train Set"),
        ("500 pcs", "1000 pcs", "Deluxe Box", "Starter"),
    ),
    "Video Games": (
        ("Legends of", "Rise of", "Shadow", "Racing", "Battle", "Kingdom", "Star"),
        ("Arena", "Quest", "Empire", "Drift", "Odyssey", "Tactics", "Frontier", "Heroes"),
        ("PS5", "Switch", "Xbox", "PC"),
    ),
    "Clothing": (
        ("Slim Fit", "Oversized", "Linen", "Cotton", "Merino", "Denim", "Classic"),
        ("T-Shirt", "Jeans", "Hoodie", "Dress", "Blazer", "Sweater", "Chinos", "Parka",
         "Polo Shirt", "Skirt"),
        ("Navy", "Black", "White", "Olive", "Grey"),
    ),
    "Shoes": (
        ("Urban", "Trail", "Classic", "Cloud", "Leather", "Canvas"),
        ("Running Shoes", "Sneakers", "Boots", "Loafers", "Sandals", "Hiking Boots",
         "Slip-Ons"),
        ("Black", "White", "Brown", "Blue"),
    ),
    "Sports & Outdoors": (
        ("Pro", "Trail", "Summit", "Aero", "Power", "Explorer"),
        ("Tennis Racket", "Camping Tent", "Yoga Block", "Dumbbell Set", "Football",
         "Cycling Helmet", "Sleeping Bag", "Backpack 30L", "Kayak Paddle"),
        ("Lite", "XL", "2-Person", "Kit"),
    ),
    "Home Decor": (
        ("Nordic", "Rustic", "Velvet", "Ceramic", "Boho", "Minimalist"),
        ("Table Lamp", "Throw Pillow", "Wall Mirror", "Scented Candle", "Vase", "Area Rug",
         "Picture Frame", "Wall Clock"),
        ("Small", "Large", "Set of 2", "Ivory"),
    ),
    "Kitchen & Dining": (
        ("Chef's", "Non-Stick", "Stainless", "Cast Iron", "Bamboo", "Ceramic"),
        ("Frying Pan", "Knife Set", "Dinner Plates", "Cutting Board", "Dutch Oven",
         "Wine Glasses", "Mixing Bowls", "Espresso Cups"),
        ("28cm", "6-Piece", "Set of 4", "Classic"),
    ),
    "Garden & DIY": (
        ("Cordless", "Heavy-Duty", "Compact", "Green", "Pro", "Weatherproof"),
        ("Drill", "Hedge Trimmer", "Garden Hose", "Tool Kit", "Lawn Mower", "Plant Pots",
         "Pressure Washer", "Seed Starter Kit"),
        ("18V", "20m", "Set", "XL"),
    ),
    "Electronics": (
        ("Wireless", "Smart", "Ultra HD", "Portable", "Noise-Cancelling", "Compact"),
        ("Earbuds", "Bluetooth Speaker", "4K TV", "Smartwatch", "Tablet", "Smartphone",
         "Laptop", "Action Camera", "Headphones", "E-Reader"),
        ("Pro", "Max", "Lite", "2025 Edition", "Plus"),
    ),
    "Home Appliances": (
        ("Smart", "Quiet", "Compact", "Turbo", "Eco", "Digital"),
        ("Robot Vacuum", "Espresso Machine", "Air Fryer", "Washing Machine", "Blender",
         "Dishwasher", "Air Purifier", "Microwave"),
        ("XL", "Plus", "Pro", "Mini"),
    ),
    "Jewelry & Watches": (
        ("Sterling Silver", "Rose Gold", "Classic", "Vintage", "Diamond", "Pearl"),
        ("Necklace", "Ring", "Bracelet", "Earrings", "Automatic Watch", "Pendant",
         "Chronograph Watch", "Cufflinks"),
        ("18K", "Limited", "Classic", "Gift Box"),
    ),
}  # fmt: skip
PREMIUM_HEADS: tuple[str, ...] = (
    "Premium",
    "Deluxe",
    "Signature",
    "Platinum",
    "Elite",
    "Luxe",
    "Artisan",
    "Master",
)

# Customer lifecycles: name, share, first-order window (fractions of the period),
# last-active rule, annual order rate (median, log-sigma).  The last-active rule is
# ("end",) = active to the end, ("abs", lo, hi) = stops at a fraction of the period,
# ("rel", lo, hi) = stops this fraction of the period after the first order.
LIFECYCLES: tuple[tuple[str, float, tuple[float, float], tuple, tuple[float, float]], ...] = (
    ("loyal_regular", 0.16, (0.0, 0.10), ("end",), (24.0, 0.45)),
    ("lapsed_heavy", 0.06, (0.0, 0.08), ("abs", 0.30, 0.60), (40.0, 0.35)),
    ("lapsed_mid", 0.09, (0.0, 0.30), ("abs", 0.35, 0.65), (12.0, 0.40)),
    ("cooling_mid", 0.07, (0.0, 0.40), ("abs", 0.70, 0.82), (9.0, 0.40)),
    ("occasional", 0.14, (0.0, 0.60), ("end",), (4.0, 0.50)),
    ("rising", 0.07, (0.60, 0.90), ("end",), (12.0, 0.40)),
    ("one_time_early", 0.14, (0.0, 0.50), ("rel", 0.0, 0.0), (0.0, 0.0)),
    ("faded_low", 0.08, (0.0, 0.50), ("rel", 0.10, 0.25), (6.0, 0.40)),
    ("fading_recent", 0.06, (0.55, 0.75), ("rel", 0.05, 0.10), (6.0, 0.40)),
    ("one_time_recent", 0.05, (0.82, 0.93), ("rel", 0.0, 0.0), (0.0, 0.0)),
    ("newly_acquired", 0.08, (-1.0, -1.0), ("end",), (15.0, 0.30)),  # last ~3 weeks
)

OPEN_HOUR, CLOSE_HOUR = 9, 22  # opening hours, order times in [09:00:00, 22:00:00)
HOUR_P = (0.04, 0.06, 0.08, 0.10, 0.09, 0.07, 0.07, 0.08, 0.09, 0.10, 0.09, 0.07, 0.06)
WEEKDAY_FACTOR = (0.90, 0.85, 0.90, 0.95, 1.10, 1.35, 1.25)  # Monday .. Sunday
MAX_BASKET = 8
RETURN_LAG_MAX = 30
DAY_FILE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\.csv$")
