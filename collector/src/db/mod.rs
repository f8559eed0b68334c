//! The central store in PostgreSQL: schema migrations, the batch writer and the day
//! partitions of `edges`.

pub mod migrate;
pub mod partitions;
pub mod rows;
pub mod writer;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

/// Where a connection URL points, without its password (for logs and errors).
pub fn describe(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
            format!(
                "postgres://{}@{}:{}/{}",
                config.get_user().unwrap_or(""),
                hosts.join(","),
                ports.join(","),
                config.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "an unparsable PostgreSQL URL".into(),
    }
}

/// Opens a connection; its I/O runs on a task of its own until the client is dropped.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config: tokio_postgres::Config =
        url.parse().with_context(|| format!("--db {}: not a PostgreSQL connection URL", describe(url)))?;
    let (client, connection) =
        config.connect(NoTls).await.with_context(|| format!("connect to PostgreSQL at {}", describe(url)))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            log::debug!("PostgreSQL connection ended: {error}");
        }
    });
    Ok(client)
}

/// Whether a failed statement may succeed if tried again later (the server or the link
/// was the problem), as opposed to the server refusing what was sent.
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    let Some(db) = error.as_db_error() else {
        // No server answer: the connection broke or could not be made.
        return true;
    };
    let code = db.code().code();
    // 08 connection exception, 40 transaction rollback (deadlock, serialization),
    // 53 insufficient resources, 57 operator intervention (shutdown), 58 system error.
    ["08", "40", "53", "57", "58"].iter().any(|class| code.starts_with(class))
}

/// An edge whose day partition is gone (dropped for retention after this session cached it):
/// a new session reads the partitions again and creates it.
pub fn is_missing_partition(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == tokio_postgres::error::SqlState::CHECK_VIOLATION && db.message().starts_with("no partition of relation")
    })
}
