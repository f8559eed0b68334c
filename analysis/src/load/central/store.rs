//! The central database's rows, read with the sync `postgres` client: every query the walk
//! makes, and the conversion of rows back into the schema's `Node` and `Edge` records.
//! Tables and columns are those of `collector/src/db/migrations/`.

use std::collections::HashMap;

use postgres::{Client, NoTls, Row, Statement};
use sensor_common::graph::{Edge, EdgeData, EdgeKind, HostInfo, Node};

use crate::error::LoadError;

/// Frontier ids per query: large enough that a level is a few round trips, small enough
/// that one statement's arrays stay a few hundred kB.
const BATCH: usize = 5_000;

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const EDGE_COLUMNS: &str = "e.host, e.origin, e.seq, e.ts_ns, e.kind, e.src, e.dst, e.attrs::text";

/// The tables a walk reads; `vtrail-collect migrate` creates them.
const TABLES: [&str; 4] = ["hosts", "nodes", "edges", "transfers"];

/// An edge row: the record, and the key it is stored under (to fetch it once).
pub struct EdgeRow {
    pub key: (String, String, i64, i64),
    pub edge: Edge,
}

/// A range of one node's edges to fetch: times in `[from, until)` (out-edges) or
/// `(from, until]` (in-edges), as `ts_ns` is stored (bigint).
pub struct Range {
    pub id: String,
    pub from: i64,
    pub until: i64,
}

/// A row that does not convert into a record: what was wrong, for the load report.
pub struct BadRow(pub String);

pub struct Store {
    client: Client,
    /// The URL as shown in messages, without a password.
    pub shown_url: String,
    pub queries: u64,
    prepared: HashMap<String, Statement>,
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`, and in the
/// key-value form (`host=db password=secret`) the password's value.
pub fn redact(url: &str) -> String {
    // A password may also be a query parameter (`?password=...`): drop its value wherever.
    let url = &hide_password_parameter(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .clone();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.clone();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.clone(),
    }
}

/// `password=VALUE` (in a query string or a key-value string, quoted or not) with the value
/// replaced by `***`.
fn hide_password_parameter(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("password=") {
        out.push_str(&rest[..at + "password=".len()]);
        out.push_str("***");
        let value = &rest[at + "password=".len()..];
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |e| e + 2)
        } else {
            value.find(['&', ' ']).unwrap_or(value.len())
        };
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// `postgres::Error` shows only "db error" for an error the server sent: say the server's
/// own message, and for other errors their cause.
fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn to_i64(ts: u64) -> i64 {
    i64::try_from(ts).unwrap_or(i64::MAX)
}

impl Store {
    pub fn open(url: &str) -> Result<Store, LoadError> {
        let shown_url = redact(url);
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| LoadError::DatabaseUrl {
            url: shown_url.clone(),
            detail: describe(&e),
        })?;
        // A server behind a firewall that drops packets would otherwise hold the question
        // for the system's TCP timeout (minutes); the URL's own connect_timeout wins.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let client = config.connect(NoTls).map_err(|e| LoadError::DatabaseDown {
            url: shown_url.clone(),
            detail: describe(&e),
        })?;
        let mut store = Store {
            client,
            shown_url,
            queries: 0,
            prepared: HashMap::new(),
        };
        // Every join here is an id list probing an index. Told the list's length, the
        // planner preferred a hash join over a scan of every edge (1.7 s at 3*10^6 edges
        // for 1,685 ids, against 0.3 s probing); a walk never wants one.
        store
            .client
            .batch_execute("SET enable_hashjoin = off; SET enable_mergejoin = off")
            .map_err(|e| store.failed("setting the planner up", e))?;
        store.check_tables()?;
        Ok(store)
    }

    fn failed(&self, what: &str, error: postgres::Error) -> LoadError {
        LoadError::DatabaseQuery {
            url: self.shown_url.clone(),
            what: what.to_owned(),
            detail: describe(&error),
        }
    }

    /// Runs `sql`, prepared once per connection: a walk sends the same few statements
    /// level after level, and parsing one again each time is a round trip of its own.
    fn query(&mut self, what: &str, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<Row>, LoadError> {
        self.queries += 1;
        let statement = match self.prepared.get(sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = self.client.prepare(sql).map_err(|e| self.failed(what, e))?;
                self.prepared.insert(sql.to_owned(), statement.clone());
                statement
            }
        };
        self.client.query(&statement, params).map_err(|e| self.failed(what, e))
    }

    fn check_tables(&mut self) -> Result<(), LoadError> {
        let names: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        let rows = self.query(
            "listing the vtrail tables",
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL",
            &[&names],
        )?;
        let missing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(LoadError::NotMigrated {
                url: self.shown_url.clone(),
                missing: missing.join(", "),
            })
        }
    }

    pub fn hosts(&mut self) -> Result<Vec<HostInfo>, LoadError> {
        let rows = self.query("reading hosts", "SELECT host, hostname, disk_ids FROM hosts ORDER BY host", &[])?;
        Ok(rows
            .iter()
            .map(|r| HostInfo {
                id: r.get(0),
                hostname: r.get(1),
                disk_ids: r.get(2),
            })
            .collect())
    }

    /// Rows of every host's `host:` node (a host describes itself in them too).
    pub fn host_nodes(&mut self) -> Result<Vec<Result<Node, BadRow>>, LoadError> {
        let rows = self.query(
            "reading host nodes",
            "SELECT host, id, node::text FROM nodes WHERE kind = 'host' ORDER BY host, id",
            &[],
        )?;
        Ok(rows.iter().map(node_of).collect())
    }

    /// Every row of the nodes with these ids, from every host that recorded them.
    pub fn nodes(&mut self, ids: &[String]) -> Result<Vec<Result<Node, BadRow>>, LoadError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let rows = self.query(
                "reading nodes",
                "SELECT host, id, node::text FROM nodes WHERE id = ANY($1) ORDER BY host, id",
                &[&chunk],
            )?;
            out.extend(rows.iter().map(node_of));
        }
        Ok(out)
    }

    /// File nodes seen under `path`.
    pub fn files_by_path(&mut self, path: &str) -> Result<Vec<Result<Node, BadRow>>, LoadError> {
        let rows = self.query(
            "finding the flagged file by path",
            "SELECT host, id, node::text FROM nodes \
             WHERE kind = 'file' AND node->'paths' @> jsonb_build_array($1::text) ORDER BY host, id",
            &[&path],
        )?;
        Ok(rows.iter().map(node_of).collect())
    }

    /// File nodes whose content hash is one of `hashes` (as hex, any case).
    pub fn files_by_sha256(&mut self, hashes: &[String]) -> Result<Vec<Result<Node, BadRow>>, LoadError> {
        // The index is on the text as recorded; the sensor writes lower case, and both
        // spellings are asked so that an upper-case record is found too.
        let spellings: Vec<String> = hashes
            .iter()
            .flat_map(|h| [h.to_ascii_lowercase(), h.to_ascii_uppercase()])
            .collect();
        let rows = self.query(
            "finding files by sha256",
            "SELECT host, id, node::text FROM nodes \
             WHERE kind = 'file' AND node->>'sha256' = ANY($1) ORDER BY host, id",
            &[&spellings],
        )?;
        Ok(rows.iter().map(node_of).collect())
    }

    /// Files recorded as untrusted (the seeds of a whole-incident question are among them).
    pub fn untrusted_files(&mut self) -> Result<Vec<Result<Node, BadRow>>, LoadError> {
        let rows = self.query(
            "reading untrusted files",
            "SELECT host, id, node::text FROM nodes \
             WHERE kind = 'file' AND node->>'untrusted' = 'true' ORDER BY host, id",
            &[],
        )?;
        Ok(rows.iter().map(node_of).collect())
    }

    pub fn file_count(&mut self) -> Result<i64, LoadError> {
        let rows = self.query("counting files", "SELECT count(DISTINCT id) FROM nodes WHERE kind = 'file'", &[])?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }

    /// Every `received_from` and `sent_to` edge. Read from `edges` itself, through the
    /// partial index of migration 2: joining the transfers table to `edges` on its key
    /// made the planner hash-join over a scan of every edge (0.5 s at 10^6 edges).
    pub fn transfers(&mut self) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        let sql = format!("SELECT {EDGE_COLUMNS} FROM edges e WHERE e.kind IN ('received_from', 'sent_to')");
        let rows = self.query("reading transfers", &sql, &[])?;
        Ok(rows.iter().map(edge_of).collect())
    }

    /// Every hand relabel: rare, and read for any file whose taint they may stop.
    pub fn relabels(&mut self) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        let sql = format!("SELECT {EDGE_COLUMNS} FROM edges e WHERE e.kind = 'relabel'");
        let rows = self.query("reading relabels", &sql, &[])?;
        Ok(rows.iter().map(edge_of).collect())
    }

    /// Out-edges of each range's node with `from <= ts_ns < until`.
    pub fn out_edges(&mut self, ranges: &[Range]) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        self.ranged(ranges, "walking forward", "e.src = f.id AND e.ts_ns >= f.lo AND e.ts_ns < f.hi")
    }

    /// In-edges of each range's node with `from < ts_ns <= until`.
    pub fn in_edges(&mut self, ranges: &[Range]) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        self.ranged(ranges, "walking backward", "e.dst = f.id AND e.ts_ns > f.lo AND e.ts_ns <= f.hi")
    }

    fn ranged(&mut self, ranges: &[Range], what: &str, condition: &str) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        let sql = format!(
            "SELECT {EDGE_COLUMNS} FROM unnest($1::text[], $2::int8[], $3::int8[]) AS f(id, lo, hi) {}",
            per_id(condition)
        );
        let mut out = Vec::new();
        for chunk in ranges.chunks(BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            let from: Vec<i64> = chunk.iter().map(|r| r.from).collect();
            let until: Vec<i64> = chunk.iter().map(|r| r.until).collect();
            let rows = self.query(what, &sql, &[&ids, &from, &until])?;
            out.extend(rows.iter().map(edge_of));
        }
        Ok(out)
    }

    /// In-edges of `ids` of the given kinds, whenever they happened.
    pub fn in_edges_of_kinds(&mut self, ids: &[String], kinds: &[EdgeKind]) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        // Without a time range every time partition is searched for every id, by index
        // probes (`per_id`); as `dst = ANY($1)` the planner took a thousand-id list for a
        // large share of a partition and scanned it whole (measured at 10^6 edges: 0.28 s
        // against 0.15 s for 2,800 process ids).
        let sql = format!(
            "SELECT {EDGE_COLUMNS} FROM unnest($1::text[]) AS f(id) {}",
            per_id("e.dst = f.id AND e.kind = ANY($2)")
        );
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let rows = self.query("reading in-edges", &sql, &[&chunk, &kinds])?;
            out.extend(rows.iter().map(edge_of));
        }
        Ok(out)
    }

    /// Each node's earliest in-edge (a seed is tainted from when its file came to be).
    pub fn first_in_edges(&mut self, ids: &[String]) -> Result<Vec<Result<EdgeRow, BadRow>>, LoadError> {
        let sql = format!(
            "SELECT {EDGE_COLUMNS} FROM unnest($1::text[]) AS f(id) \
             CROSS JOIN LATERAL (SELECT * FROM edges e WHERE e.dst = f.id ORDER BY e.ts_ns LIMIT 1) e"
        );
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let rows = self.query("reading first in-edges", &sql, &[&chunk])?;
            out.extend(rows.iter().map(edge_of));
        }
        Ok(out)
    }
}

/// The edges matching `condition` for each id of the list `f`: one index probe per id
/// (the session forbids hash and merge joins, see `Store::open`).
fn per_id(condition: &str) -> String {
    format!("JOIN edges e ON {condition}")
}

/// Ranges start at these when nothing of a node was fetched yet.
pub const BEFORE_ALL: i64 = -1;
pub const AFTER_ALL: i64 = i64::MAX;

pub fn range(id: &str, from: u64, until: u64) -> Range {
    Range {
        id: id.to_owned(),
        from: if from == u64::MAX { AFTER_ALL } else { to_i64(from) },
        until: if until == u64::MAX { AFTER_ALL } else { to_i64(until) },
    }
}

fn node_of(row: &Row) -> Result<Node, BadRow> {
    let host: String = row.get(0);
    let id: String = row.get(1);
    let text: String = row.get(2);
    serde_json::from_str::<Node>(&text).map_err(|e| BadRow(format!("node `{id}` of host {host}: {e}")))
}

fn edge_of(row: &Row) -> Result<EdgeRow, BadRow> {
    let host: String = row.get(0);
    let origin: String = row.get(1);
    let seq: i64 = row.get(2);
    let ts: i64 = row.get(3);
    let kind_name: String = row.get(4);
    let attrs: String = row.get(7);
    let what = || format!("edge {seq} of host {host} ({origin})");
    let kind = EdgeKind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == kind_name)
        .ok_or_else(|| BadRow(format!("{}: unknown kind `{kind_name}`", what())))?;
    let ts_ns = u64::try_from(ts).map_err(|_| BadRow(format!("{}: negative ts_ns {ts}", what())))?;
    // `attrs` is jsonb, which reorders keys: parsed into the kind's struct, it is written
    // back in the record's own order when indexed.
    let data = EdgeData::from_attrs_json(kind, &attrs).map_err(|e| BadRow(format!("{}: attrs: {e}", what())))?;
    Ok(EdgeRow {
        edge: Edge {
            ts_ns,
            src: row.get(5),
            dst: row.get(6),
            host: host.clone(),
            data,
        },
        key: (host, origin, seq, ts),
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(redact("postgres://vtrail:s3cret@db:5432/vtrail"), "postgres://vtrail:***@db:5432/vtrail");
        assert_eq!(redact("postgres://vtrail@db/vtrail"), "postgres://vtrail@db/vtrail");
        assert_eq!(redact("postgres://u:p@ss@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact("host=db user=vtrail password=s3cret"), "host=db user=vtrail password=***");
        assert_eq!(redact("host=db password='a b' user=v"), "host=db password=*** user=v");
        assert_eq!(redact("postgres://u@db/x?password=s3cret&sslmode=disable"), "postgres://u@db/x?password=***&sslmode=disable");
        assert_eq!(redact("postgres://db/x?password=s3cret"), "postgres://db/x?password=***");
    }
}
