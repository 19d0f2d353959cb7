//! The `maestro` binary: one process running any of maestro's modules.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use maestro::bench::Protocol;
use maestro::config::{Config, FlagValues, LogFormat};
use maestro::service::{self, Module};

/// mimalloc rather than the system allocator: the service and the planner
/// allocate and free many small strings and effects per event, and glibc's
/// malloc spent about a seventh of a planner run on them (see
/// docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "maestro",
    about = "A scheduler for dedicated game servers on Kubernetes, compatible with Maestro Next"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run modules: `all`, or any of management-api, rooms-api, worker,
    /// runtime-watcher, metrics-reporter.
    Start(StartArgs),
    /// Capacity planning: replay demand through the real engine against a
    /// simulated cluster, in virtual time.
    #[command(subcommand)]
    Sim(SimCmd),
    /// Load generators against a running maestro.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Deterministic simulation testing: the whole system under faults,
    /// seed after seed; non-zero on any violation, with the command that
    /// replays it.
    Chaos(maestro::chaos::ChaosArgs),
    /// Move schedulers over from Maestro Next, one at a time, and back
    /// (docs/MIGRATION.md).
    #[command(subcommand)]
    Migrate(maestro::migrate::MigrateCmd),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Rooms pinging (and matchmakers allocating) over HTTP keep-alive:
    /// throughput and latency percentiles, errors, rooms allocated twice.
    RoomsApi(Box<maestro::bench::RoomsApiArgs>),
    /// The same over gRPC (`api.v1.RoomsService`): `--target` is the
    /// rooms port, which serves gRPC next to HTTP.
    Grpc(Box<maestro::bench::RoomsApiArgs>),
}

#[derive(Subcommand)]
enum SimCmd {
    /// One scheduler against the demand: report.json, timeline.csv,
    /// report.svg and report.html in --out.
    Run(Box<maestro::plan::RunArgs>),
    /// Several schedulers against the same demand and seed, side by side.
    Compare(Box<maestro::plan::CompareArgs>),
    /// The cheapest policy (varying scheduler parameters) that meets a goal.
    Tune(Box<maestro::plan::TuneArgs>),
    /// A recording (`maestro start --record`) through the engine again:
    /// the same decisions, or its demand under another scheduler.
    Replay(Box<maestro::plan::ReplayArgs>),
}

#[derive(Args)]
struct StartArgs {
    #[arg(value_enum, required = true)]
    modules: Vec<Module>,
    /// A YAML configuration file (upstream's keys where they apply).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Where the embedded store keeps its data [default: ./maestro-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `sim` (a simulated cluster) or `kubernetes` [default: sim].
    #[arg(long)]
    runtime: Option<String>,
    /// [default: 8080]
    #[arg(long)]
    management_port: Option<u16>,
    /// [default: 8070]
    #[arg(long)]
    rooms_port: Option<u16>,
    /// Health, readiness and metrics [default: 8081].
    #[arg(long)]
    internal_port: Option<u16>,
    /// `text` or `json` [default: text].
    #[arg(long)]
    log_format: Option<String>,
    /// The worker's internal address (e.g. http://maestro-worker:8081), for
    /// management-api, rooms-api or metrics-reporter started without the
    /// worker: they run stateless against it.
    #[arg(long)]
    worker_url: Option<String>,
    /// Record every engine input of the worker to this file, for
    /// `maestro sim replay` (bounded by record.maxBytes, then rotated to
    /// FILE.1).
    #[arg(long)]
    record: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Version => {
            println!("maestro {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Cmd::Start(args) => start(args),
        Cmd::Chaos(args) => maestro::chaos::command(&args),
        Cmd::Migrate(cmd) => match maestro::migrate::run(cmd) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("maestro migrate: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::Bench(cmd) => {
            let (args, protocol) = match cmd {
                BenchCmd::RoomsApi(args) => (args, Protocol::Http),
                BenchCmd::Grpc(args) => (args, Protocol::Grpc),
            };
            match maestro::bench::rooms_api(*args, protocol) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("maestro bench: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Sim(cmd) => {
            let result = match cmd {
                SimCmd::Run(args) => maestro::plan::run(*args),
                SimCmd::Compare(args) => maestro::plan::compare(*args),
                SimCmd::Tune(args) => maestro::plan::tune(*args),
                SimCmd::Replay(args) => maestro::plan::replay(*args),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("maestro sim: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn start(args: StartArgs) -> ExitCode {
    let flags = FlagValues {
        config: args.config,
        data_dir: args.data_dir,
        runtime: args.runtime,
        management_port: args.management_port,
        rooms_port: args.rooms_port,
        internal_port: args.internal_port,
        log_format: args.log_format,
        worker_url: args.worker_url,
        record: args.record,
    };
    let (config, warnings) = match Config::load(&flags, std::env::vars()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("maestro: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maestro: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(service::run(config, &args.modules));
    // A store or lease call stuck on a dead connection must not hold the
    // exit: blocking threads get a moment, not forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("maestro: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
