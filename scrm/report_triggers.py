"""The triggers that keep `stage_entries` and `lead_assignments` (scrm.report_marks) in step with `activities`.

Three things change what those tables hold, and each one is handled where it happens, in its own transaction:
- a `stage_changed` entry inserted: its follower's first entry into `data.to` is the earlier of the stored one and
  this one;
- an `owner_assigned` entry naming a rep (an integer `data.rep`): a new assignment row, its `followed_up_at` the
  first `rep_action` of that rep on that lead at or after it that is already on the timeline (usually none);
- a `rep_action` entry: every assignment of that lead to that rep at or before it whose follow-up is still
  unknown or later takes this one;
- an entry of those kinds moved to another follower (a merge or its undo, one UPDATE of `follower_id`): the
  assignment rows follow their entries, and both followers' first entries and follow-ups are recomputed from
  their timelines.
- a follower's stage changed (`followers.stage`): its assignment rows' copy follows.
Nothing deletes timeline entries; `lead_assignments.activity_id` references its entry all the same.

PostgreSQL: statement-level triggers with transition tables, so a batch of entries costs one set-based statement
per table (the `WHERE` in each pass keeps a statement without these kinds cheap). A rep id is cast only when it is
a plain integer, so an odd `data.rep` never fails the write that carries it. SQLite: row triggers with `WHEN`.
"""

from __future__ import annotations

_PG_REP = "CASE WHEN {0}.data->>'rep' ~ '^[0-9]{{1,9}}$' THEN ({0}.data->>'rep')::int END"

_PG_INSERTED = f"""
CREATE OR REPLACE FUNCTION report_marks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stage_entries (follower_id, stage, at, born)
    SELECT n.follower_id, n.data->>'to', min(n.at), min(f.created_at) FROM new_rows n
    JOIN followers f ON f.id = n.follower_id
    WHERE n.kind = 'stage_changed' AND n.data->>'to' IS NOT NULL
    GROUP BY n.follower_id, n.data->>'to'
    ON CONFLICT (follower_id, stage) DO UPDATE SET at = EXCLUDED.at WHERE EXCLUDED.at < stage_entries.at;

    INSERT INTO lead_assignments (activity_id, follower_id, rep_id, at, followed_up_at, stage)
    SELECT n.id, n.follower_id, n.rep, n.at,
           (SELECT min(a.at) FROM activities a
            WHERE a.kind = 'rep_action' AND a.follower_id = n.follower_id AND a.at >= n.at
              AND {_PG_REP.format("a")} = n.rep),
           f.stage
    FROM (SELECT r.id, r.follower_id, r.at, {_PG_REP.format("r")} AS rep FROM new_rows r
          WHERE r.kind = 'owner_assigned') n
    JOIN followers f ON f.id = n.follower_id
    WHERE n.rep IS NOT NULL;

    UPDATE lead_assignments l SET followed_up_at = f.at
    FROM (SELECT l2.activity_id, min(n.at) AS at
          FROM (SELECT r.follower_id, r.at, {_PG_REP.format("r")} AS rep FROM new_rows r
                WHERE r.kind = 'rep_action') n
          JOIN lead_assignments l2 ON l2.follower_id = n.follower_id AND l2.rep_id = n.rep AND l2.at <= n.at
          GROUP BY l2.activity_id) f
    WHERE l.activity_id = f.activity_id AND (l.followed_up_at IS NULL OR f.at < l.followed_up_at);
    RETURN NULL;
END $$
"""

_PG_MOVED = f"""
CREATE OR REPLACE FUNCTION report_marks_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched bigint[];
BEGIN
    SELECT array_agg(DISTINCT f) INTO touched FROM (
        SELECT o.follower_id AS f FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.follower_id <> n.follower_id AND n.kind IN ('stage_changed', 'owner_assigned', 'rep_action')
        UNION
        SELECT n.follower_id FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.follower_id <> n.follower_id AND n.kind IN ('stage_changed', 'owner_assigned', 'rep_action')) m;
    IF touched IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE lead_assignments l SET follower_id = n.follower_id
    FROM new_rows n WHERE l.activity_id = n.id AND l.follower_id <> n.follower_id;
    DELETE FROM stage_entries WHERE follower_id = ANY(touched);
    INSERT INTO stage_entries (follower_id, stage, at, born)
    SELECT a.follower_id, a.data->>'to', min(a.at), min(f.created_at) FROM activities a
    JOIN followers f ON f.id = a.follower_id
    WHERE a.kind = 'stage_changed' AND a.follower_id = ANY(touched) AND a.data->>'to' IS NOT NULL
    GROUP BY a.follower_id, a.data->>'to';
    UPDATE lead_assignments l SET followed_up_at = (
        SELECT min(a.at) FROM activities a
        WHERE a.kind = 'rep_action' AND a.follower_id = l.follower_id AND a.at >= l.at
          AND {_PG_REP.format("a")} = l.rep_id),
        stage = (SELECT f.stage FROM followers f WHERE f.id = l.follower_id)
    WHERE l.follower_id = ANY(touched);
    RETURN NULL;
END $$
"""

_PG_STAGE = """
CREATE OR REPLACE FUNCTION report_marks_stage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_assignments SET stage = NEW.stage WHERE follower_id = NEW.id;
    RETURN NULL;
END $$
"""

_SQLITE_REP = "json_extract({0}.data, '$.rep')"
_SQLITE_FOLLOW_UP = f"""(SELECT min(a.at) FROM activities a WHERE a.kind = 'rep_action'
    AND a.follower_id = lead_assignments.follower_id AND a.at >= lead_assignments.at
    AND {_SQLITE_REP.format("a")} = lead_assignments.rep_id)"""

CREATE = {
    "postgresql": [
        _PG_INSERTED,
        _PG_MOVED,
        _PG_STAGE,
        "CREATE TRIGGER report_marks_inserted AFTER INSERT ON activities REFERENCING NEW TABLE AS new_rows"
        " FOR EACH STATEMENT EXECUTE FUNCTION report_marks_inserted()",
        "CREATE TRIGGER report_marks_moved AFTER UPDATE ON activities REFERENCING OLD TABLE AS old_rows"
        " NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_marks_moved()",
        "CREATE TRIGGER report_marks_stage AFTER UPDATE OF stage ON followers FOR EACH ROW"
        " WHEN (OLD.stage IS DISTINCT FROM NEW.stage) EXECUTE FUNCTION report_marks_stage()",
    ],
    "sqlite": [
        """CREATE TRIGGER report_stage_entry AFTER INSERT ON activities
        WHEN NEW.kind = 'stage_changed' AND json_extract(NEW.data, '$.to') IS NOT NULL
        BEGIN
            INSERT INTO stage_entries (follower_id, stage, at, born)
            VALUES (NEW.follower_id, json_extract(NEW.data, '$.to'), NEW.at,
                    (SELECT created_at FROM followers WHERE id = NEW.follower_id))
            ON CONFLICT (follower_id, stage) DO UPDATE SET at = excluded.at WHERE excluded.at < stage_entries.at;
        END""",
        f"""CREATE TRIGGER report_lead_assigned AFTER INSERT ON activities
        WHEN NEW.kind = 'owner_assigned' AND json_type(NEW.data, '$.rep') = 'integer'
        BEGIN
            INSERT INTO lead_assignments (activity_id, follower_id, rep_id, at, followed_up_at, stage)
            VALUES (NEW.id, NEW.follower_id, {_SQLITE_REP.format("NEW")}, NEW.at,
                    (SELECT min(a.at) FROM activities a WHERE a.kind = 'rep_action'
                     AND a.follower_id = NEW.follower_id AND a.at >= NEW.at
                     AND {_SQLITE_REP.format("a")} = {_SQLITE_REP.format("NEW")}),
                    (SELECT stage FROM followers WHERE id = NEW.follower_id));
        END""",
        f"""CREATE TRIGGER report_rep_action AFTER INSERT ON activities
        WHEN NEW.kind = 'rep_action'
        BEGIN
            UPDATE lead_assignments SET followed_up_at = NEW.at
            WHERE follower_id = NEW.follower_id AND rep_id = {_SQLITE_REP.format("NEW")} AND at <= NEW.at
              AND (followed_up_at IS NULL OR followed_up_at > NEW.at);
        END""",
        f"""CREATE TRIGGER report_marks_moved AFTER UPDATE OF follower_id ON activities
        WHEN OLD.follower_id IS NOT NEW.follower_id AND NEW.kind IN ('stage_changed', 'owner_assigned', 'rep_action')
        BEGIN
            UPDATE lead_assignments SET follower_id = NEW.follower_id WHERE activity_id = NEW.id;
            DELETE FROM stage_entries WHERE follower_id IN (OLD.follower_id, NEW.follower_id);
            INSERT INTO stage_entries (follower_id, stage, at, born)
            SELECT a.follower_id, json_extract(a.data, '$.to'), min(a.at), min(f.created_at) FROM activities a
            JOIN followers f ON f.id = a.follower_id
            WHERE a.kind = 'stage_changed' AND a.follower_id IN (OLD.follower_id, NEW.follower_id)
              AND json_extract(a.data, '$.to') IS NOT NULL
            GROUP BY a.follower_id, json_extract(a.data, '$.to');
            UPDATE lead_assignments SET followed_up_at = {_SQLITE_FOLLOW_UP},
                stage = (SELECT f.stage FROM followers f WHERE f.id = lead_assignments.follower_id)
            WHERE follower_id IN (OLD.follower_id, NEW.follower_id);
        END""",
        """CREATE TRIGGER report_marks_stage AFTER UPDATE OF stage ON followers
        WHEN OLD.stage IS NOT NEW.stage
        BEGIN
            UPDATE lead_assignments SET stage = NEW.stage WHERE follower_id = NEW.id;
        END""",
    ],
}

DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS report_marks_moved ON activities",
        "DROP TRIGGER IF EXISTS report_marks_inserted ON activities",
        "DROP TRIGGER IF EXISTS report_marks_stage ON followers",
        "DROP FUNCTION IF EXISTS report_marks_stage()",
        "DROP FUNCTION IF EXISTS report_marks_moved()",
        "DROP FUNCTION IF EXISTS report_marks_inserted()",
    ],
    "sqlite": [f"DROP TRIGGER IF EXISTS {name}" for name in
               ("report_stage_entry", "report_lead_assigned", "report_rep_action", "report_marks_moved",
                "report_marks_stage")],
}  # fmt: skip
