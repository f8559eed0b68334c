//! Versioned schema migrations, embedded in the binary. Each is applied in a transaction
//! of its own, recorded in `vtrail_migrations`, under a transaction-scoped advisory lock
//! so that collectors starting together apply each migration once.

use anyhow::{Context, bail};
use tokio_postgres::Client;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("migrations/0001_init.sql") },
    Migration { version: 2, name: "analysis walks", sql: include_str!("migrations/0002_analysis_walks.sql") },
];

/// The schema version this binary writes.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Advisory lock key shared by every vtrail-collect ("vtrail" in ASCII, then 1).
const MIGRATION_LOCK: i64 = 0x7674_7261_696c_0001;

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS vtrail_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

#[derive(Debug, PartialEq, Eq)]
pub struct MigrateReport {
    /// Version found before (0: an empty database).
    pub from: i32,
    pub to: i32,
    pub applied: Vec<i32>,
}

/// The schema version of the database; 0 when vtrail has never migrated it.
pub async fn current_version(client: &Client) -> anyhow::Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('vtrail_migrations') IS NOT NULL", &[])
        .await
        .context("look for vtrail_migrations")?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM vtrail_migrations", &[])
        .await
        .context("read vtrail_migrations")?;
    Ok(row.get(0))
}

/// The database was migrated by a newer vtrail-collect: this one must not write to it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database is at schema version {found}, newer than this vtrail-collect knows ({known}): \
     a newer collector migrated it; run that version (or a newer one) instead"
)]
pub struct NewerSchema {
    pub found: i32,
    pub known: i32,
}

fn refuse_newer(found: i32) -> Result<(), NewerSchema> {
    if found > latest_version() {
        return Err(NewerSchema { found, known: latest_version() });
    }
    Ok(())
}

/// Brings the database to [`latest_version`]; a database newer than that is an error.
pub async fn migrate(client: &mut Client) -> anyhow::Result<MigrateReport> {
    let from = current_version(client).await?;
    refuse_newer(from)?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS {
        let tx = client.transaction().await.context("begin a migration")?;
        tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.context("take the migration lock")?;
        tx.batch_execute(CREATE_MIGRATIONS_TABLE).await.context("create vtrail_migrations")?;
        // Read again under the lock: another collector may have migrated meanwhile.
        let version: i32 =
            tx.query_one("SELECT coalesce(max(version), 0) FROM vtrail_migrations", &[]).await?.get(0);
        refuse_newer(version)?;
        if version >= migration.version {
            continue;
        }
        tx.batch_execute(migration.sql)
            .await
            .with_context(|| format!("apply migration {} ({})", migration.version, migration.name))?;
        tx.execute(
            "INSERT INTO vtrail_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
        tx.commit().await.with_context(|| format!("commit migration {}", migration.version))?;
        applied.push(migration.version);
    }
    Ok(MigrateReport { from, to: current_version(client).await?, applied })
}

/// Fails unless the database is exactly at this binary's version (readers that must not
/// migrate, like `status`, call this).
pub async fn require_current(client: &Client) -> anyhow::Result<i32> {
    let version = current_version(client).await?;
    refuse_newer(version)?;
    if version < latest_version() {
        bail!(
            "the database is at schema version {version}, this vtrail-collect writes {}: run `vtrail-collect migrate --db URL` first",
            latest_version()
        );
    }
    Ok(version)
}
