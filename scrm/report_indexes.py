"""Indexes the reports read through (migration 0020), declared beside the tables they index.

Each one turns a report's window into a range scan that needs nothing else from the table (a covering index: on
PostgreSQL an index-only scan once VACUUM has set the visibility map):
- `ix_interactions_gain_loss`: only follows, unfollows and WeCom contact changes (partial), by time, with what
  the sources report groups by. A few percent of the interactions table, so the hot path pays little for it.
- `ix_activities_kind_at`: `owner_assigned` entries in the window (the rep leaderboard).
- `ix_activities_kind_follower`: a follower's `stage_changed` / `rep_action` entries (funnel, follow-ups).
- `ix_followers_created`: the funnel's cohort, followers created in the window.
- `ix_deliveries_created`: deliveries created in the window by template and state.
- `ix_follower_tags_tag_added`: per tag, how many carry it and when they got it.
"""

from __future__ import annotations

from sqlalchemy import Index, text

from scrm.delivery_models import Delivery
from scrm.models import Activity, Follower, FollowerTag, Interaction

GAIN_LOSS_WHERE = text("kind IN ('subscribe', 'unsubscribe', 'change_external_contact')")
_I, _A, _D = Interaction.__table__.c, Activity.__table__.c, Delivery.__table__.c

INDEXES = (
    Index("ix_interactions_gain_loss", _I.at, _I.kind, _I.event_key, _I.channel, _I.scene, _I.follower_id,
          sqlite_where=GAIN_LOSS_WHERE, postgresql_where=GAIN_LOSS_WHERE),
    Index("ix_activities_kind_at", _A.kind, _A.at),
    Index("ix_activities_kind_follower", _A.kind, _A.follower_id, _A.at),
    Index("ix_followers_created", Follower.__table__.c.created_at),
    Index("ix_deliveries_created", _D.created_at, _D.template, _D.state, _D.follower_id),
    Index("ix_follower_tags_tag_added", FollowerTag.__table__.c.tag_id, FollowerTag.__table__.c.added_at),
)  # fmt: skip
