-- vtrail central store, schema 2: what `vtrail-analysis --db` reads besides the (src, ts)
-- and (dst, ts) walks of schema 1. Each is a rare kind of row read whole by every
-- question; without these indexes each read is a scan of the whole table.

-- The cross-host edges with their attributes, every one read by every question (the
-- transfers table lacks the attributes it does not index).
CREATE INDEX edges_transfers ON edges (ts_ns) WHERE kind IN ('received_from', 'sent_to');

-- Hand relabels: any of them may stop a file's taint.
CREATE INDEX edges_relabels ON edges (ts_ns) WHERE kind = 'relabel';

-- Every host's own `host:` node (hostname and disk ids, by which other hosts name it).
CREATE INDEX nodes_hosts ON nodes (host) WHERE kind = 'host';

-- Files recorded untrusted: a whole-incident question (no flagged file) starts from those
-- with no recorded cause. The predicate is the one the analysis queries with.
CREATE INDEX nodes_untrusted_files ON nodes (id) WHERE kind = 'file' AND node->>'untrusted' = 'true';
