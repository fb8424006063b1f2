-- For a tweet store outside PostgreSQL (Cassandra): the outbox carries a new tweet's text,
-- so the worker can write it to the store if the post path could not; and a delete is
-- claimed here once, so two concurrent deletes decrement the author's counter once.
ALTER TABLE outbox ADD COLUMN text text;

CREATE TABLE tweet_deletions (
    tweet_id   bigint PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
