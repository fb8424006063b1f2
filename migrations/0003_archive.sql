-- Cold storage (docs/archive.md): tweets past the archive cut-off live in immutable
-- objects, each one author's tweets of one month (at most a few hundred). archive_objects
-- says which object holds which author's id range; archived_tweets which object holds
-- each archived tweet (tweet(id) and deletes). Deleting an archived tweet leaves its object
-- as written: the id leaves archived_tweets and joins the object's `deleted` list, which
-- every read filters out.
CREATE TABLE archive_objects (
    id         bigserial PRIMARY KEY,
    key        text NOT NULL UNIQUE,
    author_id  bigint NOT NULL,
    min_id     bigint NOT NULL,
    max_id     bigint NOT NULL,
    tweets     integer NOT NULL,
    bytes      integer NOT NULL,
    deleted    bigint[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archive_objects_author ON archive_objects (author_id, max_id DESC);

CREATE TABLE archived_tweets (
    id        bigint PRIMARY KEY,
    object_id bigint NOT NULL REFERENCES archive_objects (id)
);

-- One row: totals for /metrics (written in each object's index transaction); the horizon,
-- the highest cut-off any run has started with (no live tweet below it is older than an
-- archived one only above it: readers consult the archive for pages reaching below it);
-- and when the last run finished, so the workers' daily run happens once a day.
CREATE TABLE archive_totals (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    tweets      bigint NOT NULL DEFAULT 0,
    objects     bigint NOT NULL DEFAULT 0,
    horizon     bigint NOT NULL DEFAULT 0,
    last_run_at timestamptz
);
INSERT INTO archive_totals DEFAULT VALUES;

-- Objects a top-up replaced: deleted by a later run once no reader can still be fetching
-- them (a reader looks an object up and fetches it within milliseconds).
CREATE TABLE archive_garbage (
    key           text PRIMARY KEY,
    superseded_at timestamptz NOT NULL DEFAULT now()
);
