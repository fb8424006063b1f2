-- The celebrity flag (core/fanout.py): set by a follow or unfollow that sees the count at
-- the threshold. The worker's sweep starts a demotion (celebrity_demoting) once the count
-- has stayed under the lower bound, since celebrity_below_since, for the quiet period; the
-- AuthorDemoted event's back-fill then clears the flag.
ALTER TABLE users
    ADD COLUMN celebrity boolean NOT NULL DEFAULT false,
    ADD COLUMN celebrity_below_since timestamptz,
    ADD COLUMN celebrity_demoting boolean NOT NULL DEFAULT false;
CREATE INDEX users_celebrity ON users (id) WHERE celebrity;
