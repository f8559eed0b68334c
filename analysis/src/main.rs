//! vtrail-analysis: where a flagged file came from, what it did, where it went, and how an
//! infection spread across hosts - from the sensors' provenance graphs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use analysis::bench::{BenchConfig, load_and_query, run};
use analysis::error::{AnalysisError, QueryError};
use analysis::index::{Graph, HostIx};
use analysis::load::{LoadOptions, Question, Walk, load, load_central};
use analysis::output::{Format, escape, render_rules, render_spread, render_trace};
use analysis::select::{Selector, resolve_host};
use analysis::simulate::{Shape, SimConfig, simulate};
use analysis::time::parse_duration;

const EXIT_STATUS_HELP: &str = "Exit status:\n  \
    0  the answer is complete\n  \
    1  no answer: the flagged file is not in the graph, or no infection was found\n  \
    2  bad usage, or an input could not be read at all\n  \
    3  an answer from damaged input: a dump cut short (an interrupted export, a cut gzip\n     \
       stream) or with records that do not parse. What was read is used; the damage is\n     \
       named on standard error and at the top of the output (\"partial\": true in --json)";

#[derive(Parser)]
#[command(
    name = "vtrail-analysis",
    version,
    about = "Source, destinations, behaviours and spread of a flagged file, from vtrail provenance graphs",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Where the flagged file came from, what it did, where it went.
    #[command(after_help = EXIT_STATUS_HELP)]
    Trace {
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Propagation tree across hosts, patient zero, super infectors, growth.
    #[command(after_help = EXIT_STATUS_HELP)]
    Spread {
        #[command(flatten)]
        select: SelectArgs,
        /// Time step for the new-infections count (default: a round step giving at most 40).
        #[arg(long, value_parser = parse_duration)]
        step: Option<u64>,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Addresses to block (senders outside the loaded hosts), infected hosts to clean, paths
    /// to protect, and a YARA rule.
    #[command(after_help = EXIT_STATUS_HELP)]
    Rules {
        #[command(flatten)]
        select: SelectArgs,
        /// Print only one section, bare, for piping (e.g. `--only block | xargs -r -n1 vtrail-sensor block`).
        #[arg(long, value_parser = ["block", "protect", "yara"])]
        only: Option<String>,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write a synthetic multi-host incident (dumps + truth.json).
    Simulate {
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        hosts: usize,
        /// scale-free or small-world
        #[arg(long, default_value = "scale-free")]
        shape: Shape,
        #[arg(long)]
        out: PathBuf,
        /// Total edges to aim for (background noise fills up to it).
        #[arg(long, default_value_t = 0)]
        edges: u64,
        /// Write .jsonl.gz instead of .jsonl.
        #[arg(long)]
        gzip: bool,
    },
    /// Load and query time and peak memory for generated incidents of several sizes.
    Bench {
        /// Edge counts to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [100_000u64, 1_000_000, 10_000_000])]
        sizes: Vec<u64>,
        #[arg(long, default_value_t = 1000)]
        hosts: usize,
        #[arg(long, default_value = "target/analysis-bench")]
        dir: PathBuf,
        /// Keep the generated dumps (and reuse them next time).
        #[arg(long)]
        keep: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also import each incident into PostgreSQL and time `trace --db` and `spread --db`:
        /// a server URL (a database `vtrail_bench_<edges>` is created there for each size).
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// The `vtrail-collect` that imports for --db (default: beside this binary).
        #[arg(long, value_name = "PATH")]
        collect: Option<PathBuf>,
    },
    /// (internal) One bench measurement in a fresh process.
    #[command(hide = true)]
    BenchLoad { dir: PathBuf },
    /// (internal) One question over the database in a fresh process.
    #[command(hide = true)]
    BenchDb {
        question: String,
        url: String,
        dir: PathBuf,
    },
}

#[derive(Args)]
struct SelectArgs {
    /// The flagged file by path (any path it was seen under).
    #[arg(long, group = "selector")]
    path: Option<String>,
    /// The flagged file by content hash (every copy on every host).
    #[arg(long, group = "selector")]
    sha256: Option<String>,
    /// The flagged file (or process) by node id, e.g. file:<host>:<dev>:<ino>.
    #[arg(long, group = "selector")]
    node: Option<String>,
    /// Only look for the flagged file on this host (id, disk id or hostname).
    #[arg(long)]
    host: Option<String>,
}

impl SelectArgs {
    /// The host `--host` names, if given.
    fn host_in(&self, graph: &Graph) -> Result<Option<HostIx>, QueryError> {
        self.host.as_deref().map(|h| resolve_host(graph, h)).transpose()
    }

    fn selector(&self) -> Option<Selector> {
        match (&self.path, &self.sha256, &self.node) {
            (Some(p), _, _) => Some(Selector::Path(p.clone())),
            (_, Some(h), _) => Some(Selector::Sha256(h.clone())),
            (_, _, Some(n)) => Some(Selector::Node(n.clone())),
            _ => None,
        }
    }
}

#[derive(Args)]
struct InputArgs {
    /// Dump files (.jsonl or gzip) and/or sensor database directories, merged by node id.
    #[arg(required_unless_present = "db")]
    inputs: Vec<PathBuf>,
    /// The fleet's central database (postgres://user@host:port/db), instead of dumps: only
    /// the part of the graph the answer touches is read. To add dumps to it, import them
    /// (`vtrail-collect import --db URL DUMPS...`): an answer drawn from both at once could
    /// miss a hop between them.
    #[arg(long, value_name = "URL", conflicts_with = "inputs")]
    db: Option<String>,
    /// How far hosts' clocks may disagree when a send is paired with its receive.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    skew_allowance: u64,
}

#[derive(Args)]
struct OutputArgs {
    /// The whole report and the load summary as one JSON document.
    #[arg(long, group = "format")]
    json: bool,
    /// Graphviz DOT of the graph found (trace) or the propagation tree (spread).
    #[arg(long, group = "format")]
    dot: bool,
    /// GraphML of the same graph, for yEd, Gephi or networkx.
    #[arg(long, group = "format")]
    graphml: bool,
    /// One self-contained page with the propagation drawn and the timeline.
    #[arg(long, group = "format")]
    html: bool,
    /// Write here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

impl OutputArgs {
    fn format(&self) -> Format {
        match (self.json, self.dot, self.graphml, self.html) {
            (true, ..) => Format::Json,
            (_, true, ..) => Format::Dot,
            (_, _, true, _) => Format::Graphml,
            (.., true) => Format::Html,
            _ => Format::Text,
        }
    }

    fn emit(&self, text: &str) -> Result<(), AnalysisError> {
        match &self.output {
            Some(path) => std::fs::write(path, text).map_err(|source| AnalysisError::Io {
                context: format!("writing {}", path.display()),
                source,
            }),
            None => {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                // A closed pipe (`| head`) is not an error worth a message.
                let _ = stdout.write_all(text.as_bytes());
                Ok(())
            }
        }
    }
}

/// Exit statuses, as `EXIT_STATUS_HELP` lists them.
const EXIT_NO_ANSWER: u8 = 1;
const EXIT_ERROR: u8 = 2;
const EXIT_PARTIAL: u8 = 3;

/// Whether an answer was drawn from every record of the inputs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Complete,
    /// Records were lost (`LoadReport::partial`): a script must be able to tell.
    Partial,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(Answer::Complete) => ExitCode::SUCCESS,
        Ok(Answer::Partial) => ExitCode::from(EXIT_PARTIAL),
        Err(error) => {
            // Messages quote paths and names from the inputs: escaped like the text output.
            eprintln!("vtrail-analysis: {}", escape::text(&error.to_string()));
            match error {
                AnalysisError::Query(_) => ExitCode::from(EXIT_NO_ANSWER),
                _ => ExitCode::from(EXIT_ERROR),
            }
        }
    }
}

/// Loads the inputs; what they lost is said on standard error at once, so that it is seen
/// even when standard output goes to a file or a pipe.
fn load_inputs(
    input: &InputArgs,
    select: &SelectArgs,
    walk: Walk,
) -> Result<(Graph, analysis::load::LoadReport, Answer), AnalysisError> {
    let options = LoadOptions {
        skew_allowance_ns: input.skew_allowance,
    };
    let (graph, report) = match &input.db {
        Some(url) => {
            let question = Question {
                selector: select.selector(),
                host: select.host.clone(),
                walk,
            };
            load_central(url, &question, options)?
        }
        None => load(&input.inputs, options)?,
    };
    for damage in report.damage() {
        eprintln!("vtrail-analysis: warning: {}", escape::text(&damage));
    }
    let answer = if report.partial {
        eprintln!(
            "vtrail-analysis: warning: records were lost: any answer is partial, from what could be read"
        );
        Answer::Partial
    } else {
        Answer::Complete
    };
    Ok((graph, report, answer))
}

fn execute(command: Command) -> Result<Answer, AnalysisError> {
    match command {
        Command::Trace {
            select,
            input,
            output,
        } => {
            let selector = select.selector().ok_or_else(|| {
                AnalysisError::Usage(
                    "trace needs the flagged file: --path, --sha256 or --node".into(),
                )
            })?;
            let (graph, load_report, answer) = load_inputs(&input, &select, Walk::Trace)?;
            let host = select.host_in(&graph)?;
            let report = analysis::trace::trace(&graph, &selector, host)?;
            output.emit(&render_trace(output.format(), &report, &load_report))?;
            Ok(answer)
        }
        Command::Spread {
            select,
            step,
            input,
            output,
        } => {
            let (graph, load_report, answer) = load_inputs(&input, &select, Walk::Spread)?;
            let host = select.host_in(&graph)?;
            let report = analysis::spread::spread(&graph, select.selector().as_ref(), host, step)?;
            output.emit(&render_spread(output.format(), &report, &load_report))?;
            Ok(answer)
        }
        Command::Rules {
            select,
            only,
            input,
            output,
        } => {
            let (graph, load_report, answer) = load_inputs(&input, &select, Walk::Rules)?;
            let host = select.host_in(&graph)?;
            let report = analysis::rules::rules(&graph, select.selector().as_ref(), host)?;
            let text = match only.as_deref() {
                // Addresses only (`BlockTarget`), one per line, as `vtrail-sensor block` takes.
                Some("block") => {
                    if !report.infected_hosts.is_empty() {
                        let hosts: Vec<&str> = report
                            .infected_hosts
                            .iter()
                            .map(|h| h.host.as_str())
                            .collect();
                        eprintln!(
                            "vtrail-analysis: note: {} infected loaded host(s) are not listed (victims to clean, not to block): {}",
                            hosts.len(),
                            escape::text(&hosts.join(", "))
                        );
                    }
                    report
                        .block
                        .iter()
                        .map(|b| format!("{}\n", b.target))
                        .collect()
                }
                Some("protect") => report
                    .protect
                    .iter()
                    .map(|p| format!("{}\n", escape::text(&p.path)))
                    .collect(),
                Some(_) => {
                    // Standard output stays a bare rule; why files are missing from it (or
                    // there is no rule) is said on standard error, not left to be guessed.
                    let note = analysis::rules::no_hash_note(
                        &report.executed_without_hash,
                        report.yara.is_some(),
                    );
                    if let Some(note) = note {
                        eprintln!("vtrail-analysis: note: {}", escape::text(&note));
                    }
                    report.yara.clone().unwrap_or_default()
                }
                None => render_rules(output.format(), &report, &load_report)
                    .map_err(AnalysisError::Usage)?,
            };
            output.emit(&text)?;
            Ok(answer)
        }
        Command::Simulate {
            seed,
            hosts,
            shape,
            out,
            edges,
            gzip,
        } => {
            if hosts == 0 || hosts > 60_000 {
                return Err(AnalysisError::Usage(
                    "--hosts must be between 1 and 60000".into(),
                ));
            }
            let truth = simulate(&SimConfig {
                seed,
                hosts,
                shape,
                out: out.clone(),
                target_edges: edges,
                gzip,
            })
            .map_err(|source| AnalysisError::Io {
                context: format!("writing the simulation to {}", out.display()),
                source,
            })?;
            println!(
                "wrote {} dumps ({} edges) and truth.json to {}: {} of {} hosts infected, {} carrier(s), patient zero {}",
                truth.dumps.len(),
                truth.edges_written,
                out.display(),
                truth.infected,
                truth.hosts.len(),
                truth.carriers,
                truth.patient_zero.join(", ")
            );
            Ok(Answer::Complete)
        }
        Command::Bench {
            sizes,
            hosts,
            dir,
            keep,
            seed,
            db,
            collect,
        } => {
            let db = match db {
                Some(url) => {
                    let collect = collect.or_else(analysis::bench::central::default_collect).ok_or_else(|| {
                        AnalysisError::Usage("bench --db needs vtrail-collect: pass --collect PATH".into())
                    })?;
                    Some((url, collect))
                }
                None => None,
            };
            run(&BenchConfig {
                sizes,
                hosts,
                dir,
                keep,
                seed,
                db,
            })?;
            Ok(Answer::Complete)
        }
        Command::BenchDb { question, url, dir } => {
            let row = analysis::bench::central::query(&question, &url, &dir)?;
            println!("{}", serde_json::to_string(&row).unwrap_or_default());
            Ok(Answer::Complete)
        }
        Command::BenchLoad { dir } => {
            let row = load_and_query(&dir)?;
            println!("{}", serde_json::to_string(&row).unwrap_or_default());
            Ok(Answer::Complete)
        }
    }
}
