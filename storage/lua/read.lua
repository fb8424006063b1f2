--! include readlist ${READS}
-- Pairs of list and its rebuild lock, as read_all takes them (a home timeline and the
-- recents of the celebrities its owner follows, in one call, or one per node of a cluster:
-- one command to pack and one reply to parse per home read, not one per source); ARGV[1] before (8 bytes,
-- exclusive), ARGV[2] since (8 bytes, exclusive), ARGV[3] count, ARGV[4] ttl seconds for
-- the first list ('0' = no renew). One reply per list: {0} missing, {1} being rebuilt,
-- {2, bytes} with the sentinel appended when reached.
return read_all(read)
