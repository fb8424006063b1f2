-- Pictures uploaded straight to the object store (services/media.py). A row is made by
-- createMediaUpload (PENDING), settled by completeMediaUpload (READY with its variants, or
-- FAILED with an error and no objects) and attached to at most one tweet, by the post's
-- own transaction. tweet_id is no foreign key: tweets may live in Cassandra.
CREATE TABLE media (
    id           bigint PRIMARY KEY,
    owner_id     bigint NOT NULL REFERENCES users (id),
    state        text NOT NULL CHECK (state IN ('PENDING', 'READY', 'FAILED')),
    content_type text NOT NULL,
    byte_size    integer NOT NULL CHECK (byte_size > 0),
    token        text NOT NULL,
    alt_text     text,
    width        integer,
    height       integer,
    -- [{name, key, width, height, content_type, byte_size}], READY only
    variants     jsonb NOT NULL DEFAULT '[]',
    error        text,
    tweet_id     bigint,
    position     smallint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- completeMediaUpload's claim: one processing at a time (a stale claim is retaken).
    claimed_at   timestamptz,
    -- Set when its tweet is deleted: the objects are removed after the commit, and the
    -- worker's sweep finishes any removal that did not.
    deleted_at   timestamptz
);
CREATE INDEX media_tweet ON media (tweet_id, position) WHERE tweet_id IS NOT NULL;
-- The sweep's work: never attached (orphans, by age) and deleted with their tweet.
CREATE INDEX media_unattached ON media (created_at) WHERE tweet_id IS NULL;
CREATE INDEX media_deleted ON media (deleted_at) WHERE deleted_at IS NOT NULL;
