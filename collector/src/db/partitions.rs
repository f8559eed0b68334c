//! `edges` is partitioned by RANGE(ts_ns), one partition per UTC day, created on demand
//! before the rows that need it are inserted. PostgreSQL has no automatic partition
//! creation (a row without a partition is an error), hence this module.

use std::collections::HashSet;

use tokio_postgres::Client;

pub const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Serialises partition creation between collectors: two concurrent
/// `CREATE TABLE IF NOT EXISTS .. PARTITION OF` of one name can still fail on the catalog's
/// unique index ("vtrail" in ASCII, then 2).
const PARTITION_LOCK: i64 = 0x7674_7261_696c_0002;

/// The day (since the Unix epoch, UTC) a time stamp falls in; time stamps are >= 0.
pub fn day_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(NS_PER_DAY)
}

/// `edges_20261202`: the partition holding `day`.
pub fn partition_name(day: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(day * 86_400) {
        Ok(t) => format!("edges_{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day()),
        // Outside the calendar the library handles (no i64 nanosecond time is): the number.
        Err(_) => format!("edges_day{day}"),
    }
}

/// The partition's bounds as SQL: `FROM (a) TO (b)`; the last day of the i64 range ends at
/// MAXVALUE because its end does not fit in a bigint.
fn bounds(day: i64) -> String {
    let from = day * NS_PER_DAY;
    match (day + 1).checked_mul(NS_PER_DAY) {
        Some(to) => format!("FROM ({from}) TO ({to})"),
        None => format!("FROM ({from}) TO (MAXVALUE)"),
    }
}

/// The partitions known to exist (read at start, grown as they are created).
pub struct Partitions {
    known: HashSet<String>,
}

impl Partitions {
    pub async fn load(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let rows = client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'edges'::regclass",
                &[],
            )
            .await?;
        Ok(Self { known: rows.iter().map(|r| r.get(0)).collect() })
    }

    /// Creates the partitions of these days that are not known yet. Runs in transactions
    /// of its own, before the write: creating a partition locks `edges`, and doing it inside
    /// a write transaction would hold that lock until the batch commits.
    pub async fn ensure(&mut self, client: &mut Client, days: impl IntoIterator<Item = i64>) -> Result<(), tokio_postgres::Error> {
        let mut missing: Vec<i64> = days.into_iter().filter(|d| !self.known.contains(&partition_name(*d))).collect();
        missing.sort_unstable();
        missing.dedup();
        for day in missing {
            let name = partition_name(day);
            let tx = client.transaction().await?;
            tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK]).await?;
            tx.batch_execute(&format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF edges FOR VALUES {}", bounds(day)))
                .await?;
            tx.commit().await?;
            self.known.insert(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_named_by_their_utc_date() {
        // 2026-12-02T12:00:00Z
        let ts = 1_796_212_800 * 1_000_000_000;
        assert_eq!(partition_name(day_of(ts)), "edges_20261202");
        assert_eq!(partition_name(0), "edges_19700101");
        assert_eq!(bounds(1), format!("FROM ({NS_PER_DAY}) TO ({})", 2 * NS_PER_DAY));
    }

    #[test]
    fn the_last_day_ends_at_maxvalue() {
        let last = day_of(i64::MAX);
        assert!(bounds(last).ends_with("TO (MAXVALUE)"));
        assert_eq!(partition_name(last), "edges_22620411");
    }
}
