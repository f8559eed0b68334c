//! vtrail-collect: the fleet's central store. One function per command; the work is in
//! the `collector` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use collector::consume::{self, RunSettings};
use collector::db::{self, migrate, writer::Writer};
use collector::nats::{NatsAuth, NatsTarget, StreamSettings};
use collector::{bench, import, nats_config, status};
use sensor_common::graph::fleet::{DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, valid_subject_prefix};

/// Exit status when dumps were damaged: what could be read was stored (as vtrail-analysis).
const EXIT_DAMAGED: u8 = 3;

#[derive(Parser)]
#[command(name = "vtrail-collect", version, about = "The fleet's central store: every sensor's JetStream subject into PostgreSQL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where NATS is and who the collector is there.
#[derive(Args, Clone)]
struct NatsArgs {
    /// nats://host:port; several servers of one cluster separated by commas.
    #[arg(long = "nats", value_delimiter = ',', required = true)]
    urls: Vec<String>,
    /// A file holding the collector's nkey seed (`nats-config` writes collector.nk).
    #[arg(long, conflicts_with_all = ["user", "password_file"])]
    nkey: Option<PathBuf>,
    #[arg(long, requires = "password_file")]
    user: Option<String>,
    /// A file holding the password of --user (kept off the command line).
    #[arg(long, requires = "user")]
    password_file: Option<PathBuf>,
}

impl NatsArgs {
    fn target(&self) -> NatsTarget {
        let auth = match (&self.nkey, &self.user, &self.password_file) {
            (Some(seed), _, _) => NatsAuth::Nkey(seed.clone()),
            (None, Some(user), Some(password_file)) => NatsAuth::UserPassword { user: user.clone(), password_file: password_file.clone() },
            _ => NatsAuth::None,
        };
        NatsTarget { urls: self.urls.clone(), auth }
    }
}

/// The stream and consumer the collectors share.
#[derive(Args, Clone)]
struct StreamArgs {
    #[arg(long, default_value = DEFAULT_STREAM)]
    stream: String,
    #[arg(long, default_value = DEFAULT_SUBJECT_PREFIX)]
    subject_prefix: String,
    /// The durable consumer's name: collectors with the same name share the work.
    #[arg(long, default_value = "vtrail-collect")]
    durable: String,
}

/// How a collector consumes (`run`, and `bench`'s in-process collectors).
#[derive(Args, Clone)]
struct ConsumeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[arg(long)]
    db: String,
    #[command(flatten)]
    stream: StreamArgs,
    /// Size limit of the stream in bytes (0: the server's limit); when full, publishers
    /// are refused and keep their records in their outbox.
    #[arg(long, default_value_t = 0)]
    stream_max_bytes: i64,
    /// Copies of the stream kept by a NATS cluster (1 on a single server; 3 on a 3-node
    /// cluster, so that losing a server loses no acknowledged batch).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    replicas: u8,
    /// Most messages stored per transaction.
    #[arg(long, default_value_t = 64)]
    batch_messages: usize,
    /// How long a round waits for more messages once it has one, in ms.
    #[arg(long, default_value_t = 20)]
    linger_ms: u64,
    /// Seconds a delivered message may stay unacknowledged before it is delivered again.
    #[arg(long, default_value_t = 30)]
    ack_wait_secs: u64,
    /// Messages delivered and unacknowledged, over all collectors of the consumer.
    #[arg(long, default_value_t = 1024)]
    max_ack_pending: i64,
}

impl ConsumeArgs {
    fn settings(self) -> RunSettings {
        let batch_messages = self.batch_messages.max(1);
        RunSettings {
            nats: self.nats.target(),
            db_url: self.db,
            stream: StreamSettings {
                stream: self.stream.stream,
                subject_prefix: self.stream.subject_prefix,
                durable: self.stream.durable,
                max_bytes: self.stream_max_bytes,
                replicas: usize::from(self.replicas),
                ack_wait: Duration::from_secs(self.ack_wait_secs.max(1)),
                // A round must be able to hold a full batch of unacknowledged messages.
                max_ack_pending: self.max_ack_pending.max(batch_messages as i64),
            },
            batch_messages,
            linger: Duration::from_millis(self.linger_ms),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// The consumer daemon: the stream into PostgreSQL until SIGTERM/SIGINT.
    Run {
        #[command(flatten)]
        consume: ConsumeArgs,
    },
    /// Schema version, per host counts and last sequence, dead letters by reason; with
    /// --nats the consumer's backlog.
    Status {
        #[arg(long)]
        db: String,
        #[arg(long = "nats", value_delimiter = ',')]
        nats: Vec<String>,
        #[arg(long, requires = "nats")]
        nkey: Option<PathBuf>,
        #[command(flatten)]
        stream: StreamArgs,
        #[arg(long)]
        json: bool,
    },
    /// Throughput benchmark: publishes --edges edges from --hosts hosts, consumes them with
    /// in-process collectors, reports edges/s end to end and the publish -> commit lag.
    /// Where collectors already run, give it a stream of its own (--stream VTRAIL_BENCH
    /// --subject-prefix vtrailbench): a work-queue stream gives each subject to one consumer.
    #[command(hide = true)]
    Bench {
        #[command(flatten)]
        consume: ConsumeArgs,
        #[arg(long, default_value_t = 100_000)]
        edges: u64,
        #[arg(long, default_value_t = 100)]
        hosts: usize,
        #[arg(long, default_value_t = 1)]
        collectors: usize,
        /// Edges per second to publish at (0: as fast as JetStream acknowledges).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        #[arg(long)]
        json: bool,
    },
    /// Writes the NATS accounts block and one nkey per host that may publish only on its
    /// own subjects (and one for the collector).
    NatsConfig {
        #[arg(long)]
        out: PathBuf,
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = DEFAULT_SUBJECT_PREFIX)]
        prefix: String,
    },
    /// Applies the schema migrations this binary knows (also done by `run` and `import`).
    Migrate {
        /// postgres://user@host:port/database
        #[arg(long)]
        db: String,
    },
    /// Backfills exported dumps (.jsonl, .jsonl.gz): `vtrail-sensor export --format json`,
    /// `vtrail-analysis simulate`. Importing a dump again changes nothing.
    Import {
        #[arg(long)]
        db: String,
        #[arg(required = true)]
        dumps: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // PostgreSQL's notices ("relation already exists, skipping") are not news; RUST_LOG
    // may still ask for them by name.
    sensor_common::logging::init("info,tokio_postgres=warn");
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vtrail-collect: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { consume } => run_command(consume.settings()).await,
            Command::Bench { consume, edges, hosts, collectors, rate, json } => {
                bench_command(bench::BenchSettings { run: consume.settings(), edges, hosts, collectors, rate }, json).await
            }
            Command::Status { db, nats, nkey, stream, json } => status_command(&db, nats, nkey, &stream, json).await,
            Command::NatsConfig { out, hosts, prefix } => nats_config_command(&out, &hosts, &prefix),
            Command::Migrate { db } => migrate_command(&db).await,
            Command::Import { db, dumps } => import_command(&db, &dumps).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("vtrail-collect: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate_command(url: &str) -> anyhow::Result<ExitCode> {
    let mut client = db::connect(url).await?;
    let report = migrate::migrate(&mut client).await.with_context(|| format!("migrate {}", db::describe(url)))?;
    if report.applied.is_empty() {
        println!("schema version {}: up to date", report.to);
    } else {
        println!("schema version {} -> {} (applied {:?})", report.from, report.to, report.applied);
    }
    Ok(ExitCode::SUCCESS)
}

async fn import_command(url: &str, dumps: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut client = db::connect(url).await?;
    migrate::migrate(&mut client).await.with_context(|| format!("migrate {}", db::describe(url)))?;
    let mut writer = Writer::new(&client).await.with_context(|| format!("prepare the writer on {}", db::describe(url)))?;
    let mut damaged = false;
    for path in dumps {
        let file = import::import_file(&mut client, &mut writer, path).await?;
        println!(
            "{}: host {}, {} nodes and {} edges read; stored {} new nodes, {} new edges, {} new transfers; {} refused (dead letters) [{}]",
            path.display(),
            file.host,
            file.nodes_read,
            file.edges_read,
            file.written.nodes,
            file.written.edges,
            file.written.transfers,
            file.refused,
            file.origin
        );
        for damage in &file.damage {
            eprintln!("vtrail-collect: warning: {damage}");
        }
        damaged |= !file.damage.is_empty();
    }
    Ok(if damaged { ExitCode::from(EXIT_DAMAGED) } else { ExitCode::SUCCESS })
}

async fn run_command(settings: RunSettings) -> anyhow::Result<ExitCode> {
    if !valid_subject_prefix(&settings.stream.subject_prefix) {
        anyhow::bail!("--subject-prefix {:?} is not a subject prefix (dot-separated tokens, no wildcards)", settings.stream.subject_prefix);
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("watch SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => log::info!("SIGTERM: finishing the batch in progress"),
            _ = tokio::signal::ctrl_c() => log::info!("SIGINT: finishing the batch in progress"),
        }
        let _ = stop.send(true);
    });
    log::info!(
        "consuming {}.graph.* of stream {} (durable {}) from NATS {} into {}",
        settings.stream.subject_prefix,
        settings.stream.stream,
        settings.stream.durable,
        settings.nats.describe(),
        db::describe(&settings.db_url)
    );
    consume::run(&settings, shutdown, None).await?;
    Ok(ExitCode::SUCCESS)
}

async fn status_command(url: &str, nats: Vec<String>, nkey: Option<PathBuf>, stream: &StreamArgs, json: bool) -> anyhow::Result<ExitCode> {
    let client = db::connect(url).await?;
    let mut report = status::of_store(&client).await.with_context(|| format!("read the store at {}", db::describe(url)))?;
    if !nats.is_empty() {
        let target = NatsTarget { urls: nats, auth: nkey.map_or(NatsAuth::None, NatsAuth::Nkey) };
        report.consumer = Some(status::of_consumer(&target, &stream.stream, &stream.durable).await?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

fn nats_config_command(out: &std::path::Path, hosts: &[String], prefix: &str) -> anyhow::Result<ExitCode> {
    let written = nats_config::write(out, hosts, prefix)?;
    println!("wrote {}", written.accounts_file.display());
    for key in &written.hosts {
        println!(
            "  host {}: {} (publishes {prefix}.graph.{token} and {prefix}.alerts.{token} only) -> the sensor's [fleet] credentials",
            key.host,
            key.seed_file.display(),
            token = key.token
        );
    }
    println!("  collector: {} -> vtrail-collect run --nkey {}", written.collector_seed_file.display(), written.collector_seed_file.display());
    println!(
        "Include it in nats-server.conf beside a `jetstream {{ store_dir: ... }}` block:\n  include \"{}\"\n\
         Keep the .nk files secret (mode 0600): each is the identity of one host.",
        std::fs::canonicalize(&written.accounts_file).unwrap_or(written.accounts_file.clone()).display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn bench_command(settings: bench::BenchSettings, json: bool) -> anyhow::Result<ExitCode> {
    let report = bench::run(settings).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} edges from {} hosts in {} messages{}, {} collector(s): published in {:.2} s; stored end to end in {:.2} s = {:.0} edges/s; \
             lag publish -> committed: median {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            report.edges,
            report.hosts,
            report.messages,
            if report.rate > 0 { format!(" at {} edges/s", report.rate) } else { String::new() },
            report.collectors,
            report.publish_seconds,
            report.end_to_end_seconds,
            report.edges_per_second,
            report.lag_median_ms,
            report.lag_p99_ms,
            report.lag_max_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
