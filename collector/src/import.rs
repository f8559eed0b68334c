//! Backfill: exported dumps (`vtrail-sensor export --format json`, `vtrail-analysis
//! simulate`, plain or gzip, schema 1 or 2) stored through the same writer as the stream.
//! Dumps are read by vtrail-analysis' streaming reader, so both tools agree on what a dump
//! holds and on what counts as damage.
//!
//! Each dump is its own origin, `import:<first 16 hex digits of the file's sha256>`, and a
//! record's sequence is its position in the file (the header is 1, the first record 2: the
//! line number when the dump has no blank or skipped lines). Importing the same file again
//! stores nothing new; nodes come in at sequence 0, so any streamed state of a node wins.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use analysis::load::{DumpRecord, InputSummary, read_dump};
use anyhow::Context;
use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::db::rows::RowSet;
use crate::db::writer::{Writer, Written};
use crate::deadletter::DeadLetter;

/// Records per transaction: large enough that COPY dominates, small enough that a failure
/// late in a big dump keeps what came before.
const RECORDS_PER_TRANSACTION: usize = 50_000;
/// Records read ahead of the writer.
const READ_AHEAD: usize = 8_192;

/// What one dump gave.
#[derive(Clone, Debug, Default)]
pub struct FileImport {
    pub path: PathBuf,
    pub origin: String,
    pub host: String,
    pub nodes_read: u64,
    pub edges_read: u64,
    pub written: Written,
    /// Records that were read but do not fit the store (kept as dead letters).
    pub refused: u64,
    /// What the dump lost, one sentence each (empty when it was whole).
    pub damage: Vec<String>,
}

/// `import:<16 hex>` of the dump's content: of the decompressed bytes for a gzip file, so
/// that a dump imported once plain and once compressed is one origin.
pub fn origin_of(path: &Path) -> anyhow::Result<String> {
    let open = || File::open(path).with_context(|| format!("open {}", path.display()));
    let mut magic = [0u8; 2];
    let gzip = open()?.read(&mut magic).with_context(|| format!("read {}", path.display()))? == 2 && magic == [0x1f, 0x8b];
    let mut file: Box<dyn Read> = if gzip { Box::new(MultiGzDecoder::new(open()?)) } else { Box::new(open()?) };
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = match file.read(&mut buffer) {
            Ok(n) => n,
            // A cut gzip stream: the reader reports the damage; the hash covers what is readable.
            Err(_) if gzip => 0,
            Err(error) => return Err(error).with_context(|| format!("read {}", path.display())),
        };
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("import:{hex}"))
}

/// Imports one dump.
pub async fn import_file(client: &mut Client, writer: &mut Writer, path: &Path) -> anyhow::Result<FileImport> {
    let origin = origin_of(path)?;
    let subject = format!("file:{}", path.display());
    let (records, mut incoming) = tokio::sync::mpsc::channel::<DumpRecord>(READ_AHEAD);
    let reader_path = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        let mut summary = InputSummary { path: reader_path.display().to_string(), ..InputSummary::default() };
        let header = read_dump(&reader_path, &mut summary, |record| records.blocking_send(record).is_ok());
        (header, summary)
    });

    let mut report = FileImport { path: path.to_owned(), origin: origin.clone(), ..FileImport::default() };
    let mut rows = RowSet::default();
    let mut pending = 0usize;
    // The header is position 1.
    let mut position = 1u64;
    let mut failure = None;
    while let Some(record) = incoming.recv().await {
        match record {
            DumpRecord::Header(header) => {
                report.host = header.host.id.clone();
                rows.add_host_info(&header.host, 0);
            }
            DumpRecord::Node(node) => {
                position += 1;
                report.nodes_read += 1;
                rows.add_node(&node, 0);
            }
            DumpRecord::Edge(edge) => {
                position += 1;
                report.edges_read += 1;
                rows.add_edge(&edge, &origin, position);
            }
        }
        pending += 1;
        if pending >= RECORDS_PER_TRANSACTION {
            if let Err(error) = flush(client, writer, &subject, &mut rows, &mut report).await {
                failure = Some(error);
                break;
            }
            pending = 0;
        }
    }
    // Dropping the receiver stops the reader at its next record.
    drop(incoming);
    let (header, summary) = reader.await.context("the dump reader thread failed")?;
    if let Some(error) = failure {
        return Err(error);
    }
    header.with_context(|| format!("read {}", path.display()))?;
    flush(client, writer, &subject, &mut rows, &mut report).await?;
    report.damage = summary.damage();
    Ok(report)
}

async fn flush(client: &mut Client, writer: &mut Writer, subject: &str, rows: &mut RowSet, report: &mut FileImport) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let dead: Vec<DeadLetter> = rows.refused.iter().map(|r| DeadLetter::of_record(subject, r)).collect();
    report.refused += dead.len() as u64;
    let written = writer
        .write(client, rows, &dead)
        .await
        .with_context(|| format!("store the records of {}", report.path.display()))?;
    report.written += written;
    *rows = RowSet::default();
    Ok(())
}
