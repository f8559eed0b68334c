-- vtrail central store, schema 1. Every row says which host recorded it; (host, origin, seq)
-- is the idempotency key: a record delivered twice is stored once.

CREATE TABLE hosts (
    host        text PRIMARY KEY,           -- HostInfo.id (the host's first disk id)
    hostname    text NOT NULL DEFAULT '',
    disk_ids    text[] NOT NULL DEFAULT '{}',
    info_seq    bigint NOT NULL DEFAULT 0,  -- sequence of the host_info record applied (newer wins)
    last_seq    bigint NOT NULL DEFAULT 0,  -- highest stream sequence stored for this host
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- A node as its host's sensor merged it: a record with a higher seq replaces the row.
-- Ids like remote:<ip> and user:<name> are not host-scoped; each host keeps its own row
-- and readers merge them as the analysis merges dumps.
CREATE TABLE nodes (
    host           text NOT NULL,
    id             text NOT NULL,
    kind           text NOT NULL,           -- NodeKind: host, process, file, remote, user
    first_seen_ns  bigint NOT NULL,
    seq            bigint NOT NULL,         -- 0 for imported dumps
    node           jsonb NOT NULL,          -- the schema's Node record
    PRIMARY KEY (host, id)
);
CREATE INDEX nodes_by_id ON nodes (id);
CREATE INDEX nodes_by_sha256 ON nodes ((node->>'sha256')) WHERE kind = 'file';
CREATE INDEX nodes_by_path ON nodes USING gin ((node->'paths') jsonb_path_ops) WHERE kind = 'file';

-- Edges, append-only, partitioned by time (ranges of one day of ts_ns, created by the
-- collector as records arrive). Indexed for time-respecting walks both ways.
CREATE TABLE edges (
    host    text NOT NULL,
    origin  text NOT NULL DEFAULT '',       -- '' = the host's stream; 'import:<sha256 of dump>' for backfills
    seq     bigint NOT NULL,                -- stream sequence, or line number in an imported dump
    ts_ns   bigint NOT NULL,
    kind    text NOT NULL,                  -- EdgeKind name
    src     text NOT NULL,
    dst     text NOT NULL,
    attrs   jsonb NOT NULL,
    PRIMARY KEY (host, origin, seq, ts_ns)
) PARTITION BY RANGE (ts_ns);
CREATE INDEX edges_by_dst_ts ON edges (dst, ts_ns);
CREATE INDEX edges_by_src_ts ON edges (src, ts_ns);

-- The cross-host edges (received_from / sent_to) with what spread joins on.
CREATE TABLE transfers (
    host      text NOT NULL,
    origin    text NOT NULL DEFAULT '',
    seq       bigint NOT NULL,
    ts_ns     bigint NOT NULL,
    kind      text NOT NULL,                -- received_from | sent_to
    file      text NOT NULL,                -- the file node id on this host
    remote    text NOT NULL,                -- the remote:<ip> node id
    ip        text,
    protocol  text,
    name      text,                         -- the name as sent on the wire
    PRIMARY KEY (host, origin, seq)
);
CREATE INDEX transfers_by_file ON transfers (file, ts_ns);
CREATE INDEX transfers_by_remote ON transfers (remote, ts_ns);
CREATE INDEX transfers_by_ts ON transfers (ts_ns);

-- What could not be stored, with why: nothing received is dropped silently.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    subject      text NOT NULL,
    host         text,                      -- the host the subject names, if any
    reason       text NOT NULL,             -- BatchError::reason() or a collector reason
    detail       text NOT NULL,
    payload      bytea                      -- cut to the collector's limit
);
