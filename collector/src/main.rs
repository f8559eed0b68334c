//! vtrail-collect: the fleet's central store. One function per command; the work is in
//! the `collector` library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use collector::db::{self, migrate, writer::Writer};
use collector::import;

/// Exit status when dumps were damaged: what could be read was stored (as vtrail-analysis).
const EXIT_DAMAGED: u8 = 3;

#[derive(Parser)]
#[command(name = "vtrail-collect", version, about = "The fleet's central store: every sensor's JetStream subject into PostgreSQL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info,tokio_postgres=warn")).init();
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
