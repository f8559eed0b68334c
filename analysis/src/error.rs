//! Errors a caller can match on. Each says what failed, on what input, and what to do.

use std::path::PathBuf;

use sensor_common::graph::{DUMP_FORMAT, READABLE_SCHEMA_VERSIONS, database::READABLE_DATABASE_VERSIONS};

/// Why an input could not be read at all. Damage that still leaves usable records
/// (a cut last line, a few bad lines) is not an error: it is reported in `LoadReport`
/// (`partial`, `damage()`), and the command line answers with exit status 3.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no input given: pass dump files (.jsonl, .jsonl.gz) or a sensor database directory")]
    NoInputs,
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: empty file: a dump starts with a `{DUMP_FORMAT}` header line")]
    Empty { path: PathBuf },
    #[error(
        "{path}: not a vtrail graph dump: the first line must be a `{DUMP_FORMAT}` header ({detail})"
    )]
    NotADump { path: PathBuf, detail: String },
    #[error(
        "{path}: graph schema version {found} is not supported (this vtrail-analysis reads versions {READABLE_SCHEMA_VERSIONS:?}); \
         use the vtrail-analysis released with the sensor that wrote it"
    )]
    UnknownSchemaVersion { path: PathBuf, found: u32 },
    #[error(
        "{path}: sensor database version {found} is not supported (this vtrail-analysis reads versions {READABLE_DATABASE_VERSIONS:?}); \
         use the vtrail-analysis released with the sensor that wrote it, or export a dump with that sensor"
    )]
    UnknownDatabaseVersion { path: PathBuf, found: u32 },
    #[error("{path}: not a sensor database directory (no sled `db`/`conf` file inside)")]
    NotADatabase { path: PathBuf },
    #[error(
        "{path}: cannot open the sensor database: {source} (if vtrail-sensor is running it holds the lock: \
         export a dump instead, or copy the directory and read the copy)"
    )]
    Sled { path: PathBuf, source: sled::Error },
    #[error(
        "{path}: sensor database has no `{key}` in tree `meta`: it was not written by vtrail-sensor"
    )]
    MissingMeta { path: PathBuf, key: &'static str },
    #[error("{path}: sensor database meta `{key}` is malformed: {detail}")]
    BadMeta {
        path: PathBuf,
        key: &'static str,
        detail: String,
    },
    #[error("--db {url}: not a PostgreSQL URL ({detail}); give one like postgres://user@host:5432/vtrail")]
    DatabaseUrl { url: String, detail: String },
    #[error(
        "--db {url}: cannot connect: {detail} (is PostgreSQL running there, and are the host, port, \
         user and database right?)"
    )]
    DatabaseDown { url: String, detail: String },
    #[error(
        "--db {url}: this database has no vtrail tables (missing: {missing}): run `vtrail-collect migrate --db URL` \
         and load it (`vtrail-collect run` or `vtrail-collect import`)"
    )]
    NotMigrated { url: String, missing: String },
    #[error("--db {url}: {what} failed: {detail}")]
    DatabaseQuery {
        url: String,
        what: String,
        detail: String,
    },
    #[error(
        "more than {limit} {what} in the inputs: this build indexes them with {bits}-bit numbers"
    )]
    TooMany {
        what: &'static str,
        limit: u64,
        bits: u32,
    },
}

/// Why a question about the loaded graph has no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "the flagged file is not in the graph: no file node matches {selector}{scope} \
         (searched {files} file nodes on {hosts} hosts). Check the spelling, load the dump of the host \
         that holds it, or pass --node with an id from the dump"
    )]
    FileNotInGraph {
        selector: String,
        scope: String,
        files: usize,
        hosts: usize,
    },
    #[error("node `{id}` is a {kind} node; trace starts from a file or a process")]
    NotTraceable { id: String, kind: &'static str },
    #[error(
        "host `{id}` is not among the loaded inputs (loaded: {loaded}); load its dump or database"
    )]
    UnknownHost { id: String, loaded: String },
    #[error("no tainted execution found: no untrusted file was executed in the loaded graph{hint}")]
    NoInfection { hint: String },
}

/// What the command line reports; `main` turns each into a message and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}
