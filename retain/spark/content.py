"""Content recommendations: implicit-feedback ALS on user × content interactions, category affinity
for users ALS does not know, and a popularity baseline to judge ALS against on the holdout window.

An interaction is a known user's events naming one content_id in the calibration period (dates <=
cutoff). Its confidence weight is the number of such events; ``log_scale=True`` uses log1p of it
instead, so a user reloading one article fifty times does not outweigh fifty articles read once.
ALS turns a weight w into confidence 1 + alpha·w (Hu, Koren & Volinsky 2008).

Recommendations exclude by default what the user already interacted with in calibration: news and
media are rarely consumed twice, so a seen item is a wasted slot (``exclude_seen=False`` keeps them).
The evaluation counts, for each user known to ALS, the items they first interacted with in the
holdout window, and compares ALS with the tenant's most popular items the user had not seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retain.models.errors import FitError
from retain.spark.features import Window

MIN_USERS = 2
MIN_ITEMS = 2


def _f():
    # pyspark is imported only by the functions that need it, as elsewhere in retain.spark: the
    # package imports without the spark extra installed.
    from pyspark.sql import functions as F

    return F


def interactions(events, window: Window, log_scale: bool = False):
    """DataFrame(user_id, content_id, content_category, weight) over the calibration period."""
    from pyspark.sql import Window as W

    F = _f()
    rows = events.where(F.col("user_id").isNotNull() & F.col("content_id").isNotNull() & (F.col("content_id") != "")
                        & (F.col("date") <= window.cutoff.isoformat()))
    counts = rows.groupBy("user_id", "content_id").agg(F.count("*").alias("n"))
    # Events of one item may disagree on its category (re-classified content, a stale client): take
    # its most frequent one, so that every user's affinity counts the item in the same category.
    votes = rows.where(F.col("content_category").isNotNull()).groupBy("content_id", "content_category").count()
    first = W.partitionBy("content_id").orderBy(F.desc("count"), "content_category")
    categories = (votes.withColumn("rank", F.row_number().over(first)).where(F.col("rank") == 1)
                  .select("content_id", "content_category"))
    weight = F.log1p("n") if log_scale else F.col("n").cast("double")
    return (counts.join(categories, "content_id", "left")
            .select("user_id", "content_id", "content_category", weight.alias("weight")))


@dataclass
class AlsFit:
    """A fitted ALS model and its id mappings: ``indexer`` numbers user_id → user and content_id →
    item (alphabetical, so the same ids always get the same numbers); ``rated`` (user_id,
    content_id, user, item, weight) is what ALS was trained on."""

    model: Any
    indexer: Any
    rated: Any
    n_users: int
    n_items: int

    @property
    def users(self):
        """DataFrame(user_id, user)."""
        return self.rated.select("user_id", "user").distinct()

    @property
    def items(self):
        """DataFrame(content_id, item)."""
        return self.rated.select("content_id", "item").distinct()

    def unpersist(self) -> None:
        self.rated.unpersist()


def train_als(interactions, rank: int = 16, reg: float = 0.1, alpha: float = 10.0, iterations: int = 10,
              seed: int = 20250101) -> AlsFit:
    """Implicit-feedback ALS on the interactions; FitError if fewer than 2 users or 2 items."""
    from pyspark.ml.feature import StringIndexer
    from pyspark.ml.recommendation import ALS

    F = _f()
    # Alphabetical rather than StringIndexer's default frequency order, whose numbers move
    # whenever counts do; both columns are indexed in one pass over the data.
    indexer = StringIndexer(inputCols=["user_id", "content_id"], outputCols=["user", "item"],
                            stringOrderType="alphabetAsc").fit(interactions)
    n_users, n_items = (len(labels) for labels in indexer.labelsArray)
    if n_users < MIN_USERS or n_items < MIN_ITEMS:
        raise FitError(f"too few content interactions: {n_users} user(s) and {n_items} item(s) in the calibration "
                       f"period (need at least {MIN_USERS} users and {MIN_ITEMS} items)")
    rated = (indexer.transform(interactions)
             .select("user_id", "content_id", F.col("user").cast("int"), F.col("item").cast("int"), "weight").cache())
    # Blocks as many as the session's shuffle partitions: sized for one tenant, like every shuffle.
    # No checkpointing: ten iterations leave a short lineage, and it would need a shared directory.
    blocks = int(interactions.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    als = ALS(rank=rank, regParam=reg, alpha=alpha, maxIter=iterations, seed=seed, implicitPrefs=True,
              coldStartStrategy="drop", userCol="user", itemCol="item", ratingCol="weight",
              numUserBlocks=blocks, numItemBlocks=blocks, checkpointInterval=-1)
    return AlsFit(als.fit(rated), indexer, rated, n_users, n_items)


def top_items(fit: AlsFit, k: int = 10, exclude_seen: bool = True):
    """DataFrame(user_id, items: array<string>): each known user's k best items, best first,
    without the items they interacted with in calibration unless ``exclude_seen`` is False."""
    F = _f()
    if not exclude_seen:
        recs = fit.model.recommendForAllUsers(min(fit.n_items, k))
    else:
        seen = fit.rated.groupBy("user").agg(F.count("*").alias("n"))
        typical, most = seen.agg(F.percentile_approx("n", 0.99), F.max("n")).first()
        if most <= 2 * typical:
            recs = fit.model.recommendForAllUsers(min(fit.n_items, k + most))
        else:
            # Asking everyone for k + what the heaviest reader has seen would make catalogue-long
            # lists for all: a depth serving 99% of users, the heavy tail asked apart.
            heavy = seen.where(F.col("n") > typical)
            recs = (fit.model.recommendForAllUsers(min(fit.n_items, k + typical)).join(heavy, "user", "left_anti")
                    .unionByName(fit.model.recommendForUserSubset(heavy, min(fit.n_items, k + most))))
    ranked = recs.select("user", F.posexplode("recommendations").alias("pos", "rec"))
    ranked = ranked.select("user", "pos", F.col("rec.item").alias("item"))
    if exclude_seen:
        ranked = ranked.join(fit.rated.select("user", "item"), ["user", "item"], "left_anti")
    lists = (ranked.join(fit.items, "item").groupBy("user")
             .agg(F.array_sort(F.collect_list(F.struct("pos", "content_id"))).alias("ranked")))
    return lists.join(fit.users, "user").select(
        "user_id", F.slice(F.transform("ranked", lambda r: r["content_id"]), 1, k).alias("items"))


def _category_shares(interactions):
    """DataFrame(content_category, share): the tenant's distribution of interaction weight."""
    F = _f()
    per_category = (interactions.where(F.col("content_category").isNotNull())
                    .groupBy("content_category").agg(F.sum("weight").alias("n")))
    total = per_category.agg(F.sum("n").alias("total"))
    return per_category.crossJoin(total).select("content_category", (F.col("n") / F.col("total")).alias("share"))


def category_shares(interactions, limit: int = 500) -> dict[str, float]:
    """The tenant's ``limit`` largest category shares, for the affinity of users scored later."""
    rows = _category_shares(interactions).orderBy(_f().desc("share"), "content_category").limit(limit).collect()
    return {row["content_category"]: float(row["share"]) for row in rows}


def tenant_categories(interactions, k: int = 3) -> list[str]:
    """The tenant's k most interacted categories: the affinity of a user with no history."""
    rows = _category_shares(interactions).orderBy(_f().desc("share"), "content_category").limit(k).collect()
    return [row["content_category"] for row in rows]


def category_affinity(interactions, k: int = 3, prior_strength: float = 5.0):
    """DataFrame(user_id, categories: array<string>): each user's k top categories, best first.

    A user's share of category c is (n_c + m·p_c) / (n + m): their interaction weight in c plus m
    pseudo-interactions spread as the tenant's distribution p. Heavy users keep their own taste; a
    user with one interaction mostly gets the tenant's favourites (m = ``prior_strength``, in the
    units of ``weight``: interactions, or log1p of them with ``log_scale``).
    """
    from pyspark.sql import Window as W

    F = _f()
    own = (interactions.where(F.col("content_category").isNotNull())
           .groupBy("user_id", "content_category").agg(F.sum("weight").alias("n")))
    totals = own.groupBy("user_id").agg(F.sum("n").alias("total"))
    shares = _category_shares(interactions)
    # A category the user never touched scores in proportion to p_c, so only the tenant's k best of
    # those can make their list: candidates are theirs plus those, not users × every category.
    top = shares.orderBy(F.desc("share"), "content_category").limit(k)
    candidates = (totals.select("user_id").crossJoin(F.broadcast(top.select("content_category")))
                  .unionByName(own.select("user_id", "content_category")).distinct())
    scored = (candidates.join(own, ["user_id", "content_category"], "left").join(totals, "user_id")
              .join(F.broadcast(shares), "content_category").fillna({"n": 0.0})
              .withColumn("score", (F.col("n") + prior_strength * F.col("share")) / (F.col("total") + prior_strength)))
    best = W.partitionBy("user_id").orderBy(F.desc("score"), F.desc("share"), "content_category")
    ranked = scored.withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= k)
    return (ranked.groupBy("user_id").agg(F.array_sort(F.collect_list(F.struct("rank", "content_category")))
                                         .alias("ranked"))
            .select("user_id", F.transform("ranked", lambda r: r["content_category"]).alias("categories")))


def popularity(interactions, k: int = 10) -> list[str]:
    """The k items the most users interacted with (ties: more weight, then id): the baseline."""
    F = _f()
    rows = (interactions.groupBy("content_id").agg(F.count("*").alias("users"), F.sum("weight").alias("weight"))
            .orderBy(F.desc("users"), F.desc("weight"), "content_id").limit(k).collect())
    return [row["content_id"] for row in rows]


def precision_at_k(recommended: dict[str, list[str]], held_out: dict[str, set[str]], k: int = 10) -> float | None:
    """Mean over users with a held-out item of |top k ∩ held out| / k (a missing or short list
    counts its empty slots as misses); None when no user has a held-out item."""
    users = [user for user, items in held_out.items() if items]
    if not users:
        return None
    hits = sum(len(set(recommended.get(user, [])[:k]) & held_out[user]) for user in users)
    return hits / (k * len(users))


def evaluate_content(fit: AlsFit, events, window: Window, k: int = 10, *, calibration=None,
                     recommendations=None, max_users: int = 50_000) -> dict[str, Any]:
    """Precision@k of ALS and of the popularity baseline on the holdout window, with coverage.

    Users evaluated: those known to ALS with an item in the holdout they had not interacted with
    in calibration (at most ``max_users`` of them, a deterministic sample by hash of the id).
    ``coverage``: share of all users with such a new item who have an ALS list; ``catalog_coverage``:
    share of the calibration items that appear in some user's list.
    """
    F = _f()
    calibration = calibration if calibration is not None else interactions(events, window)
    recommendations = recommendations if recommendations is not None else top_items(fit, k)
    later = (events.where(F.col("user_id").isNotNull() & F.col("content_id").isNotNull() & (F.col("content_id") != "")
                          & (F.col("date") > window.cutoff.isoformat())
                          & (F.col("date") <= window.holdout_end.isoformat()))
             .select("user_id", "content_id").distinct()
             .join(calibration.select("user_id", "content_id"), ["user_id", "content_id"], "left_anti"))
    listed = recommendations.where(F.size("items") > 0)
    table = (later.groupBy("user_id").agg(F.collect_set("content_id").alias("held"))
             .join(fit.users.select("user_id", F.lit(True).alias("known")), "user_id", "left")
             .join(listed.select("user_id", "items"), "user_id", "left")).cache()
    try:
        holdout_users, eligible, covered = table.agg(F.count("*"), F.count("known"), F.count("items")).first()
        evaluated = table.where(F.col("known"))
        if eligible > max_users:
            evaluated = evaluated.where(F.abs(F.xxhash64("user_id")) % 1_000_000 < 1_000_000 * max_users // eligible)
        seen_lists = calibration.groupBy("user_id").agg(F.collect_list("content_id").alias("seen"))
        rows = evaluated.join(seen_lists, "user_id", "left").collect()
    finally:
        table.unpersist()
    held_out = {row["user_id"]: set(row["held"]) for row in rows}
    als = {row["user_id"]: list(row["items"] or []) for row in rows}
    seen = {row["user_id"]: set(row["seen"] or []) for row in rows}
    # The baseline gets the same favour as ALS: popular items the user has already seen are skipped.
    popular = popularity(calibration, min(fit.n_items, k + max((len(s) for s in seen.values()), default=0)))
    baseline = {user: [item for item in popular if item not in seen[user]][:k] for user in held_out}
    als_precision, popular_precision = precision_at_k(als, held_out, k), precision_at_k(baseline, held_out, k)
    catalogue = listed.select(F.explode("items").alias("item")).distinct().count()
    return {
        "k": k, "als_precision_at_k": als_precision, "popularity_precision_at_k": popular_precision,
        "lift": als_precision / popular_precision if als_precision is not None and popular_precision else None,
        "users_evaluated": len(held_out), "holdout_users": holdout_users,
        "coverage": covered / holdout_users if holdout_users else None,
        "catalog_coverage": catalogue / fit.n_items,
    }


@dataclass
class ContentResult:
    """The content model of a run: holdout ``metrics``, ALS ``recommendations`` (user_id, items),
    ``categories`` (user_id, categories) for every user with categorised interactions,
    ``default_categories`` for users with none, and the ``popular`` items (the baseline)."""

    metrics: dict[str, Any]
    recommendations: Any
    categories: Any
    default_categories: list[str]
    popular: list[str]
    fit: AlsFit | None = field(default=None, repr=False)
    interactions: Any = field(default=None, repr=False)

    def unpersist(self) -> None:
        """Release what the run cached (the DataFrames stay usable, recomputed on demand)."""
        for cached in (self.fit, self.interactions, self.recommendations):
            if cached is not None:
                cached.unpersist()


def fit_content(events, window: Window, k: int = 10, categories_k: int = 3, prior_strength: float = 5.0,
                log_scale: bool = False, exclude_seen: bool = True, **als_params: Any) -> ContentResult:
    """Interactions, ALS, category affinity, popularity and the holdout evaluation of one tenant;
    FitError (the run records "could not fit content: ...") when there is too little to fit."""
    calibration = interactions(events, window, log_scale).cache()
    try:
        fit = train_als(calibration, **als_params)
    except FitError:
        calibration.unpersist()
        raise
    recommendations = top_items(fit, k, exclude_seen).cache()
    metrics = evaluate_content(fit, events, window, k, calibration=calibration, recommendations=recommendations)
    return ContentResult(metrics, recommendations, category_affinity(calibration, categories_k, prior_strength),
                         tenant_categories(calibration, categories_k), popularity(calibration, k), fit, calibration)
