"""The product catalogue: names, categories, prices (integer cents), premium products,
popularity, and how likely each customer spend bucket is to pick each product."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segment_pipeline.generator.parameters import (
    CATEGORIES,
    NAME_PARTS,
    PREMIUM_HEADS,
    PREMIUM_SHARE,
)

#: How strongly each spend bucket (budget, mid, premium-seeking) favours premium products.
PREMIUM_GAMMA = (-0.8, 0.1, 1.3)


def fmt_cents(cents: np.ndarray) -> list[str]:
    """Format integer cents as fixed 2-decimal strings (no float formatting involved)."""
    out = []
    for c in cents.tolist():
        sign = "-" if c < 0 else ""
        a = abs(c)
        out.append(f"{sign}{a // 100}.{a % 100:02d}")
    return out


@dataclass(frozen=True)
class Catalogue:
    """Every product (arrays indexed by product, grouped by category in CATEGORIES order) and
    the per-category parameters the day loop draws with."""

    names: list[str]
    categories: list[str]
    cents: np.ndarray  # base price in integer cents
    premium: np.ndarray  # bool
    popularity: np.ndarray
    ids: np.ndarray  # P0001 ... (object)
    base_price_str: np.ndarray  # cents formatted (object)
    cat_offset: np.ndarray  # products of category c: cat_offset[c] .. cat_offset[c + 1] - 1
    product_cum: np.ndarray  # [bucket, category, product in category] cumulative choice
    quantity_mean: np.ndarray  # per category: extra quantity (Poisson mean)
    return_p: np.ndarray  # per category: return probability per line

    @property
    def n_products(self) -> int:
        return len(self.names)


def build_catalogue(rng: np.random.Generator) -> Catalogue:
    """Draw the products (the generator's first draws) and derive ids, formatted prices and
    the product choice per (spend bucket, category): premium products are favoured by high
    spend power."""
    names, categories, cents, premium, popularity = _draw_products(rng)
    n_products = len(names)
    pid_width = max(4, len(str(n_products)))
    cat_offset = np.zeros(len(CATEGORIES) + 1, dtype=np.int64)
    cat_offset[1:] = np.cumsum([c[5] for c in CATEGORIES])
    return Catalogue(
        names=names,
        categories=categories,
        cents=cents,
        premium=premium,
        popularity=popularity,
        ids=np.array([f"P{i + 1:0{pid_width}d}" for i in range(n_products)], dtype=object),
        base_price_str=np.array(fmt_cents(cents), dtype=object),
        cat_offset=cat_offset,
        product_cum=_product_choice(popularity, premium, cat_offset),
        quantity_mean=np.array([c[3] for c in CATEGORIES]),
        return_p=np.array([c[6] for c in CATEGORIES]),
    )


def _product_choice(
    popularity: np.ndarray, premium: np.ndarray, cat_offset: np.ndarray
) -> np.ndarray:
    """Cumulative choice probabilities per (spend bucket, category, product in category);
    2.0 past a category's last product (and at it, against float rounding)."""
    n_cats = len(CATEGORIES)
    max_pc = max(c[5] for c in CATEGORIES)
    prod_cum = np.full((3, n_cats, max_pc), 2.0)
    for b in range(3):
        for ci in range(n_cats):
            sl = slice(cat_offset[ci], cat_offset[ci + 1])
            w = popularity[sl] * np.exp(PREMIUM_GAMMA[b] * premium[sl])
            cum = np.cumsum(w / w.sum())
            cum[-1] = 2.0
            prod_cum[b, ci, : len(cum)] = cum
    return prod_cum


def _draw_products(
    rng: np.random.Generator,
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Build products: names, categories, base price cents, premium flag, popularity.

    Base prices are log-uniform in the category range; the top ``PREMIUM_SHARE`` of products
    are drawn from the top of the range with a gap, so "premium" is clearly visible.
    """
    names: list[str] = []
    cat_names: list[str] = []
    cents_all: list[np.ndarray] = []
    premium_all: list[np.ndarray] = []
    pop_all: list[np.ndarray] = []
    for cat, lo, hi, _q, _pop, n, _ret in CATEGORIES:
        heads, nouns, variants = NAME_PARTS[cat]
        n_prem = max(1, round(PREMIUM_SHARE * n))
        pos = np.concatenate([rng.uniform(0.0, 0.62, n - n_prem), rng.uniform(0.80, 1.0, n_prem)])
        price = lo * (hi / lo) ** pos
        cents = np.where(
            price < 10,
            np.maximum(np.round(price * 10).astype(np.int64) * 10 - 1, 49),
            np.round(price).astype(np.int64) * 100 - 1,
        )
        premium = np.arange(n) >= n - n_prem
        # names: unique (head, noun, variant) combinations in a seeded order
        combos = [
            (h, no, v)
            for h in range(len(heads))
            for no in range(len(nouns))
            for v in range(len(variants) + 1)
        ]
        order = rng.permutation(len(combos))
        prem_heads = rng.permutation(len(PREMIUM_HEADS))
        used: set[str] = set()  # membership only, never iterated
        cat_product_names: list[str] = []
        k = 0
        for i in range(n):
            while True:
                h, no, v = combos[order[k % len(combos)]]
                k += 1
                head = PREMIUM_HEADS[prem_heads[i % len(prem_heads)]] if premium[i] else heads[h]
                name = f"{head} {nouns[no]}" + (f" {variants[v - 1]}" if v else "")
                if name not in used:
                    break
            used.add(name)
            cat_product_names.append(name)
        # product ids are shuffled within the category so premium is not "the last ids"
        perm = rng.permutation(n)
        popularity = (1.0 / (1.0 + rng.permutation(n)) ** 0.7) * np.where(premium, 0.6, 1.0)
        names.extend(cat_product_names[j] for j in perm)
        cat_names.extend([cat] * n)
        cents_all.append(cents[perm])
        premium_all.append(premium[perm])
        pop_all.append(popularity[perm])
    return (
        names,
        cat_names,
        np.concatenate(cents_all),
        np.concatenate(premium_all),
        np.concatenate(pop_all),
    )
