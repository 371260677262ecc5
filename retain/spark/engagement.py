"""Channel and send-time summaries in Spark: per user and channel, messages sent and responded
to; per user, engagement by local hour of the week."""

from __future__ import annotations

from retain.spark.features import Window

# Monday 00:00 local time is bucket 0; Spark's dayofweek is 1 for Sunday.
_BUCKET = "((dayofweek(local_time) + 5) % 7) * 24 + hour(local_time)"


def channel_summaries(events, window: Window):
    """(user_id, channel, sends, responses) over the calibration period."""
    from pyspark.sql import functions as F

    calibration = events.where((F.col("date") <= window.cutoff.isoformat()) & F.col("channel").isNotNull()
                               & (F.col("send") | F.col("response")))
    return (calibration.groupBy("user_id", "channel")
            .agg(F.sum(F.col("send").cast("int")).alias("sends"),
                 F.sum(F.col("response").cast("int")).alias("responses")))


def send_time_counts(events, window: Window):
    """(user_id, bucket, n): engagement (visits and responses) by local hour of the week.

    The user's time zone is the event's context timezone; events without one count in UTC.
    """
    from pyspark.sql import functions as F

    engaged = events.where((F.col("date") <= window.cutoff.isoformat()) & (F.col("visit") | F.col("response")))
    local = engaged.withColumn("local_time", F.from_utc_timestamp(
        F.col("event_time"), F.coalesce(F.col("timezone"), F.lit("UTC"))))
    return local.groupBy("user_id", F.expr(_BUCKET).alias("bucket")).count().withColumnRenamed("count", "n")
