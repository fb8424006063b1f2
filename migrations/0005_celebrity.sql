-- The celebrity flag (core/fanout.py): set by a follow or unfollow that sees the count at
-- the threshold, cleared by the worker once the count has stayed under the lower bound
-- (since celebrity_below_since) for the quiet period.
ALTER TABLE users
    ADD COLUMN celebrity boolean NOT NULL DEFAULT false,
    ADD COLUMN celebrity_below_since timestamptz;
CREATE INDEX users_celebrity ON users (id) WHERE celebrity;
