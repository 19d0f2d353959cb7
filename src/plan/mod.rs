//! `maestro sim`: the capacity planner's command line.
//!
//! It reads the scheduler file (the document a user would POST, YAML or
//! JSON, through the Management API's own reader) and the demand, runs
//! [`maestro_sim::plan`] and writes what it found: `report.json`,
//! `timeline.csv`, `report.svg` and `report.html`, plus a summary table.

mod plot;
mod replay;
mod tune;

pub use replay::{ReplayArgs, replay};
pub use tune::{TuneArgs, tune};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use maestro_engine::Millis;
use maestro_engine::scheduler::Scheduler;
use maestro_engine::scheduler::quantity::parse_quantity;
use maestro_sim::cluster::{NodeAutoscale, NodePool};
use maestro_sim::demand::synthetic::Synthetic;
use maestro_sim::demand::{self, Demand, Format};
use maestro_sim::dist::{self, Distribution, Spec};
use maestro_sim::plan::{self, Outcome, PlanConfig};

/// What every planner command shares: the demand and how it becomes
/// matches, the cluster, the seed.
#[derive(Args, Clone, Debug)]
pub struct DemandArgs {
    /// The demand: a file, or `synthetic:KEY=VALUE,...` (days, peak,
    /// trough, noise, spike=DAY@FACTOR, launch=DAYS).
    #[arg(long)]
    pub demand: String,
    /// steamcharts, series, sessions or swf [default: guessed from the file].
    #[arg(long)]
    pub demand_format: Option<String>,
    /// The app whose rows a steamcharts file contributes.
    #[arg(long)]
    pub app_id: Option<u64>,
    /// Demand is multiplied by this.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    #[arg(long, default_value_t = 10)]
    pub players_per_match: u32,
    /// fixed:30m, uniform:20m,40m, lognormal:MEDIAN,SIGMA or
    /// file:PATH[:COLUMN] (seconds, e.g. a CSV's duration column).
    #[arg(long, default_value = "fixed:30m")]
    pub match_duration: String,
    /// Gaps in a series longer than this are held, not interpolated.
    #[arg(long, default_value = "6h")]
    pub max_gap: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// How the simulated world runs, for every planner command (replay
/// included): waits, the warm-up, nodes, start-up latency, the seed.
#[derive(Args, Clone, Debug)]
pub struct PolicyArgs {
    /// A match that finds no room for this long is dropped.
    #[arg(long, default_value = "60s")]
    pub wait_timeout: String,
    /// Simulate at most this much of the demand.
    #[arg(long)]
    pub duration: Option<String>,
    /// Before the demand, with a ramp up to its first value; not reported.
    #[arg(long, default_value = "1h")]
    pub warmup: String,
    /// Each node's CPU (cores, or a quantity such as 16000m): rooms then
    /// wait for room on nodes, and nodes are added after 90 s of waiting.
    #[arg(long, requires = "node_memory")]
    pub node_cpu: Option<String>,
    /// Each node's memory (a quantity such as 64Gi).
    #[arg(long, requires = "node_cpu")]
    pub node_memory: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    pub max_nodes: u32,
    /// Pod start-up latency (a distribution spec).
    #[arg(long, default_value = "fixed:5s")]
    pub start_latency: String,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A scheduler in the Management API's shape (YAML or JSON).
    #[arg(long)]
    pub scheduler: PathBuf,
    #[command(flatten)]
    pub demand: DemandArgs,
    /// Where report.json, timeline.csv, report.svg and report.html go.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Two or more schedulers, each replayed against the same demand.
    #[arg(long = "scheduler", required = true, num_args = 1)]
    pub schedulers: Vec<PathBuf>,
    #[command(flatten)]
    pub demand: DemandArgs,
    /// Where each run's files (in a folder per scheduler) and the overlay
    /// plot go.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A scheduler file: its document (kept for `tune` to vary) and the
/// scheduler it describes.
pub struct SchedulerFile {
    pub path: PathBuf,
    pub document: serde_json::Value,
    pub scheduler: Scheduler,
}

impl SchedulerFile {
    pub fn read(path: &Path) -> Result<SchedulerFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the scheduler file {}", path.display()))?;
        SchedulerFile::parse(path, &text)
    }

    /// A scheduler file's text, JSON when it opens with `{`, YAML
    /// otherwise; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<SchedulerFile> {
        let document: serde_json::Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(text)
                .with_context(|| format!("{}: not valid JSON", path.display()))?
        } else {
            serde_saphyr::from_str(text)
                .map_err(|e| anyhow::anyhow!("{}: not valid YAML: {e}", path.display()))?
        };
        let scheduler = scheduler_of(&document)
            .with_context(|| format!("the scheduler file {}", path.display()))?;
        Ok(SchedulerFile {
            path: path.to_path_buf(),
            document,
            scheduler,
        })
    }
}

/// The scheduler a document describes, checked as `POST /schedulers`
/// checks it.
pub fn scheduler_of(document: &serde_json::Value) -> Result<Scheduler> {
    let body = serde_json::to_vec(document)?;
    let scheduler = maestro_api::scheduler_from_json(&body).map_err(|e| anyhow::anyhow!("{e}"))?;
    maestro_engine::scheduler::validate(&scheduler).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(scheduler)
}

fn duration_arg(flag: &str, text: &str) -> Result<Millis> {
    dist::duration(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

fn distribution_arg(flag: &str, text: &str) -> Result<Distribution> {
    match Distribution::parse_spec(text).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))? {
        Spec::Ready(d) => Ok(d),
        Spec::File { path, column } => {
            empirical(&path, column.as_deref()).with_context(|| format!("--{flag} {text}"))
        }
    }
}

/// An empirical distribution from a CSV column of seconds (`duration` when
/// no column is named).
fn empirical(path: &str, column: Option<&str>) -> Result<Distribution> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        bail!("{path}: empty");
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let want = column.unwrap_or("duration");
    let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(want)) else {
        bail!(
            "{path}:1: no column named {want} (columns: {})",
            names.join(", ")
        );
    };
    let mut samples = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let field = line.split(',').nth(index).map(str::trim).unwrap_or("");
        let secs: f64 = field
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .with_context(|| {
                format!(
                    "{path}:{}: {want}: `{field}` is not a positive number of seconds",
                    i + 1
                )
            })?;
        samples.push(Millis((secs * 1000.0) as u64));
    }
    Distribution::empirical(samples).map_err(|e| anyhow::anyhow!("{path}: {e}"))
}

/// The demand, with the importer's warnings printed to stderr.
pub fn load_demand(args: &DemandArgs) -> Result<Demand> {
    if let Some(spec) = args.demand.strip_prefix("synthetic:") {
        let synthetic = Synthetic::parse(spec)?;
        return Ok(Demand::Players(synthetic.series(args.policy.seed)));
    }
    let path = &args.demand;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the demand file {path}"))?;
    let format = match args.demand_format.as_deref() {
        Some(name) => format_named(name, args.app_id)?,
        None => guess_format(path, &text, args.app_id)?,
    };
    let max_gap = duration_arg("max-gap", &args.max_gap)?;
    let imported = demand::parse(path, &text, &format, max_gap)?;
    const SHOWN: usize = 10;
    for warning in imported.warnings.iter().take(SHOWN) {
        eprintln!("warning: {warning}");
    }
    if imported.warnings.len() > SHOWN {
        eprintln!("warning: … and {} more", imported.warnings.len() - SHOWN);
    }
    Ok(imported.demand)
}

fn format_named(name: &str, app_id: Option<u64>) -> Result<Format> {
    Ok(match name {
        "steamcharts" => Format::SteamCharts {
            app_id: app_id.context("--demand-format steamcharts needs --app-id")?,
        },
        "series" => Format::Series,
        "sessions" => Format::Sessions,
        "swf" => Format::Swf,
        other => {
            bail!("--demand-format: `{other}` is not one of steamcharts, series, sessions, swf")
        }
    })
}

fn guess_format(path: &str, text: &str, app_id: Option<u64>) -> Result<Format> {
    let header = text.lines().next().unwrap_or("").to_ascii_lowercase();
    if path.ends_with(".swf") || header.starts_with(';') {
        return Ok(Format::Swf);
    }
    if header.starts_with("appid") {
        return format_named("steamcharts", app_id);
    }
    if header.contains("start") && header.contains("end") {
        return Ok(Format::Sessions);
    }
    Ok(Format::Series)
}

/// The plan of one scheduler against the shared arguments.
pub fn plan_config(scheduler: Scheduler, args: &DemandArgs) -> Result<PlanConfig> {
    let mut c = PlanConfig::new(scheduler);
    apply_policy(&mut c, &args.policy)?;
    if !(args.scale.is_finite() && args.scale >= 0.0) {
        bail!("--scale: {} must be a number of 0 or more", args.scale);
    }
    if args.players_per_match == 0 {
        bail!("--players-per-match: must be at least 1");
    }
    c.scale = args.scale;
    c.players_per_match = args.players_per_match;
    c.match_duration = distribution_arg("match-duration", &args.match_duration)?;
    Ok(c)
}

/// The world's side of a plan: waits, warm-up, nodes, latency, seed.
pub fn apply_policy(c: &mut PlanConfig, args: &PolicyArgs) -> Result<()> {
    c.wait_timeout = duration_arg("wait-timeout", &args.wait_timeout)?;
    c.warmup = duration_arg("warmup", &args.warmup)?;
    c.duration = args
        .duration
        .as_deref()
        .map(|d| duration_arg("duration", d))
        .transpose()?;
    c.seed = args.seed;
    c.cluster.start_latency = distribution_arg("start-latency", &args.start_latency)?;
    if let (Some(cpu), Some(memory)) = (&args.node_cpu, &args.node_memory) {
        let cpu = parse_quantity(cpu).map_err(|e| anyhow::anyhow!("--node-cpu: `{cpu}` {e}"))?;
        let memory =
            parse_quantity(memory).map_err(|e| anyhow::anyhow!("--node-memory: `{memory}` {e}"))?;
        c.cluster.nodes = Some(NodePool {
            cpu_millis: (cpu.value() * 1000.0).round() as u64,
            memory_bytes: memory.value().round() as u64,
            min_nodes: 1,
            max_nodes: args.max_nodes.max(1),
            autoscale: Some(NodeAutoscale::default()),
        });
    }
    Ok(())
}

/// Runs one plan with a progress bar on a terminal.
pub fn run_plan(config: &PlanConfig, demand: &Demand, label: &str) -> Result<Outcome> {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {percent:>3}% simulated, {elapsed} ")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let outcome = plan::run(config, demand, |done| {
        bar.set_position((done * 1000.0) as u64)
    });
    bar.finish_and_clear();
    Ok(outcome?)
}

/// Writes one run's files into `dir`.
pub fn write_outcome(dir: &Path, outcome: &Outcome) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    let mut json = serde_json::to_string_pretty(&outcome.report)?;
    json.push('\n');
    write("report.json", json.as_bytes())?;
    write("timeline.csv", outcome.timeline_csv().as_bytes())?;
    let svg = plot::timeline_svg(&outcome.report.scheduler, &outcome.timeline)?;
    write("report.svg", svg.as_bytes())?;
    let title = format!("maestro sim: {}", outcome.report.scheduler);
    write(
        "report.html",
        plot::html(&title, &[&outcome.report], &[svg.as_str()]).as_bytes(),
    )?;
    Ok(())
}

/// How the summary shows one figure of a report.
type Cell = fn(&plan::Report) -> String;

/// The summary table: one column per run, headed by the scheduler's name.
pub fn summary(reports: &[&plan::Report]) -> String {
    let labels: Vec<String> = reports.iter().map(|r| r.scheduler.clone()).collect();
    summary_labelled(&labels, reports)
}

/// The summary table, each column headed by its label (a file's name
/// when several files describe schedulers of one name).
pub fn summary_labelled(labels: &[String], reports: &[&plan::Report]) -> String {
    let rows: [(&str, Cell); 15] = [
        ("scheduler", |r| r.scheduler.clone()),
        ("room-hours", |r| format!("{:.1}", r.room_hours)),
        ("node-hours", |r| format!("{:.1}", r.node_hours)),
        ("peak rooms", |r| r.peak_rooms.to_string()),
        ("matches started", |r| r.matches_started.to_string()),
        ("matches waited", |r| r.matches_waited.to_string()),
        ("wait p50 (s)", |r| format!("{:.2}", r.wait_p50_s)),
        ("wait p99 (s)", |r| format!("{:.2}", r.wait_p99_s)),
        ("matches dropped", |r| {
            format!("{} ({:.3}%)", r.matches_dropped, r.dropped_ratio * 100.0)
        }),
        ("occupied rooms deleted", |r| {
            r.occupied_rooms_deleted.to_string()
        }),
        ("scale ups / downs", |r| {
            format!("{} / {}", r.scale_ups, r.scale_downs)
        }),
        ("simulated", |r| {
            humantime::format_duration(Duration::from_secs(r.simulated_seconds as u64)).to_string()
        }),
        ("wall", |r| format!("{:.2}s", r.wall_seconds)),
        ("simulated/wall", |r| format!("{:.0}x", r.speedup)),
        ("decision trace", |r| r.decision_trace_hash.clone()),
    ];
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| reports.iter().map(|r| f(r)).collect())
        .collect();
    if let Some(first) = cells.first_mut() {
        for (cell, label) in first.iter_mut().zip(labels) {
            cell.clone_from(label);
        }
    }
    let widths: Vec<usize> = (0..reports.len())
        .map(|i| cells.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for ((label, _), row) in rows.iter().zip(&cells) {
        out.push_str(&format!("{label:<label_width$}"));
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("  {cell:>width$}"));
        }
        out.push('\n');
    }
    out
}

pub fn run(args: RunArgs) -> Result<()> {
    let file = SchedulerFile::read(&args.scheduler)?;
    let demand = load_demand(&args.demand)?;
    let config = plan_config(file.scheduler, &args.demand)?;
    let outcome = run_plan(&config, &demand, "run")?;
    write_outcome(&args.out, &outcome)?;
    print!("{}", summary(&[&outcome.report]));
    println!(
        "wrote {}/{{report.json,timeline.csv,report.svg,report.html}}",
        args.out.display()
    );
    if outcome.report.occupied_rooms_deleted > 0 {
        bail!(
            "{} occupied rooms were deleted: this is a bug in maestro, please report it with the seed",
            outcome.report.occupied_rooms_deleted
        );
    }
    Ok(())
}

pub fn compare(args: CompareArgs) -> Result<()> {
    if args.schedulers.len() < 2 {
        bail!("--scheduler: give two or more to compare");
    }
    let demand = load_demand(&args.demand)?;
    let mut outcomes = Vec::new();
    for (i, path) in args.schedulers.iter().enumerate() {
        let file = SchedulerFile::read(path)?;
        let config = plan_config(file.scheduler, &args.demand)?;
        let label = format!("{}/{}", i + 1, args.schedulers.len());
        outcomes.push((path.clone(), run_plan(&config, &demand, &label)?));
    }
    let reports: Vec<&plan::Report> = outcomes.iter().map(|(_, o)| &o.report).collect();
    let labels: Vec<String> = args
        .schedulers
        .iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    print!("{}", summary_labelled(&labels, &reports));
    if let Some(out) = &args.out {
        for (i, (path, outcome)) in outcomes.iter().enumerate() {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("scheduler");
            write_outcome(&out.join(format!("{}-{stem}", i + 1)), outcome)?;
        }
        let runs: Vec<(String, &[plan::TimelineRow])> = outcomes
            .iter()
            .map(|(path, o)| (path.display().to_string(), o.timeline.as_slice()))
            .collect();
        let svg = plot::overlay_svg(&runs)?;
        std::fs::write(out.join("compare.svg"), &svg)?;
        let page = plot::html("maestro sim compare", &reports, &[svg.as_str()]);
        std::fs::write(out.join("compare.html"), page)?;
        println!(
            "wrote {}/compare.svg and a folder per scheduler",
            out.display()
        );
    }
    Ok(())
}
