-- Users, the social graph, tweets, and the transactional outbox.

CREATE TABLE users (
    id              bigint PRIMARY KEY,
    handle          text NOT NULL,
    display_name    text NOT NULL,
    bio             text NOT NULL DEFAULT '',
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_active_at  timestamptz NOT NULL DEFAULT now(),
    followers_count integer NOT NULL DEFAULT 0 CHECK (followers_count >= 0),
    following_count integer NOT NULL DEFAULT 0 CHECK (following_count >= 0),
    tweets_count    integer NOT NULL DEFAULT 0 CHECK (tweets_count >= 0)
);
-- Handles are unique case-insensitively but keep the case their owner chose.
CREATE UNIQUE INDEX users_handle_lower ON users (lower(handle));

-- seq is a snowflake minted at follow time: keyset order for follower/following lists
-- and the range key that splits a big fan-out into chunks.
CREATE TABLE follows (
    follower_id bigint NOT NULL REFERENCES users (id),
    followee_id bigint NOT NULL REFERENCES users (id),
    seq         bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_followee_seq ON follows (followee_id, seq DESC) INCLUDE (follower_id);
CREATE INDEX follows_follower_seq ON follows (follower_id, seq DESC) INCLUDE (followee_id);

CREATE TABLE tweets (
    id         bigint PRIMARY KEY,
    author_id  bigint NOT NULL REFERENCES users (id),
    text       text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX tweets_author_id ON tweets (author_id, id DESC);

-- A repeated post with the same key returns the first tweet and creates nothing.
CREATE TABLE idempotency_keys (
    user_id    bigint NOT NULL REFERENCES users (id),
    key        text NOT NULL,
    tweet_id   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- Events written in the same transaction as the change they announce, relayed to the
-- event bus afterwards: a tweet acknowledged to its author is announced even if the bus
-- was down when it was posted.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    tweet_id   bigint NOT NULL,
    author_id  bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
