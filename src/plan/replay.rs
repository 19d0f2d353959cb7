//! `maestro sim replay`: a recording (`maestro start --record`) through
//! the engine again, exactly, or its demand under another policy.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use maestro_sim::demand::Demand;
use maestro_sim::record::{Frames, replay as replay_frames};

use super::{PolicyArgs, SchedulerFile, apply_policy, run_plan, summary, write_outcome};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A recording written by `maestro start --record FILE`.
    pub file: PathBuf,
    /// Replay the recorded demand (its allocations, each lasting as long as
    /// its room stayed busy) under this scheduler instead: a what-if on
    /// production traffic.
    #[arg(long)]
    pub scheduler: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// With --scheduler: where the run's files go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print every frame of the recording instead, one a line.
    #[arg(long)]
    pub list: bool,
}

pub fn replay(args: ReplayArgs) -> Result<()> {
    let file = File::open(&args.file)
        .with_context(|| format!("cannot open the recording {}", args.file.display()))?;
    let mut frames = Frames::new(BufReader::new(file));
    if args.list {
        for (i, frame) in frames.by_ref().enumerate() {
            println!("{i}: {:?}", frame?);
        }
        return Ok(());
    }
    let replayed = replay_frames(frames.by_ref())
        .with_context(|| format!("the recording {}", args.file.display()))?;
    if frames.truncated {
        eprintln!(
            "warning: the last frame of {} is cut short (the process stopped mid-write); replayed up to it",
            args.file.display()
        );
    }
    println!(
        "replayed {} inputs of segment {}: {} decisions, decision trace {}",
        replayed.inputs, replayed.segment, replayed.decisions, replayed.hash
    );
    let Some(path) = &args.scheduler else {
        if let Some(why) = &replayed.inexact {
            bail!("not an exact replay: {why}");
        }
        if let Some((frame, recorded, replayed)) = &replayed.mismatch {
            bail!(
                "the decisions differ from the recording at frame {frame}: recorded {recorded}, replayed {replayed}"
            );
        }
        println!(
            "the same decisions as recorded ({} checkpoints agree)",
            replayed.checkpoints
        );
        return Ok(());
    };
    let file = SchedulerFile::read(path)?;
    let name = file.scheduler.name.clone();
    let matches = match replayed.matches.get(&name) {
        Some(m) => m.clone(),
        None if replayed.matches.len() == 1 => replayed
            .matches
            .values()
            .next()
            .cloned()
            .unwrap_or_default(),
        None => bail!(
            "the recording has no allocations of scheduler {name} (it has: {})",
            replayed
                .matches
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if matches.is_empty() {
        bail!("the recording holds no allocation to replay");
    }
    println!(
        "{} recorded matches replayed under {}",
        matches.len(),
        path.display()
    );
    let mut config = maestro_sim::plan::PlanConfig::new(file.scheduler);
    apply_policy(&mut config, &args.policy)?;
    let outcome = run_plan(&config, &Demand::Matches(matches), "replay")?;
    if let Some(out) = &args.out {
        write_outcome(out, &outcome)?;
    }
    print!("{}", summary(&[&outcome.report]));
    Ok(())
}
