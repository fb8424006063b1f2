-- The highest cut-off an archive run finished with: the live store holds nothing below
-- it, so readers skip it there (storage/archived_tweets.py). 0: no run finished yet.
ALTER TABLE archive_totals ADD COLUMN complete_below bigint NOT NULL DEFAULT 0;
