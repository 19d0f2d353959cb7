//! `maestro sim tune`: the cheapest policy that meets a goal.
//!
//! The parameters named by `--vary` are set in the scheduler document (so
//! the winner is a file ready to POST) and each policy is replayed against
//! the same demand and seed. The search is a grid (`--steps` values a
//! parameter) over every combination, then, for one parameter, a bisection
//! between the cheapest policy that meets the goal and the cheaper
//! neighbour that misses it (`--refine` rounds). Cost is room-hours, or
//! node-hours with a node pool. Plans run on every core at once; each is
//! deterministic, so the result does not depend on the order they finish.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Args;
use maestro_sim::demand::Demand;
use maestro_sim::plan::{self, Report};
use serde::Serialize;
use serde_json::Value;

use super::{DemandArgs, SchedulerFile, plan_config, scheduler_of};

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The scheduler to start from (YAML or JSON).
    #[arg(long)]
    pub scheduler: PathBuf,
    #[command(flatten)]
    pub demand: DemandArgs,
    /// NAME=LOW..HIGH or NAME=V1,V2,...: readyTarget, downThreshold, min,
    /// max, cooldown, bufferAmount, roomsReplicas, or a dotted path in the
    /// scheduler document (e.g. autoscaling.max).
    #[arg(long, required = true, num_args = 1)]
    pub vary: Vec<String>,
    /// Conditions on the report, comma-separated, e.g.
    /// 'wait_p99_s<=10,matches_dropped<=0.1%' (a % compares the share of
    /// requested matches).
    #[arg(long)]
    pub goal: String,
    /// Values tried for a LOW..HIGH range.
    #[arg(long, default_value_t = 6)]
    pub steps: usize,
    /// Bisection rounds after the grid (one varied parameter only).
    #[arg(long, default_value_t = 4)]
    pub refine: usize,
    /// Where best.yaml, tune.json and frontier.svg go.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Policies tried at most, so a careless grid cannot run for days.
const MAX_POLICIES: usize = 400;

#[derive(Clone, Debug)]
struct Parameter {
    name: String,
    path: Vec<String>,
    integer: bool,
    values: Vec<f64>,
}

fn parameter(spec: &str, steps: usize) -> Result<Parameter> {
    let (name, range) = spec
        .split_once('=')
        .with_context(|| format!("--vary {spec}: expected NAME=LOW..HIGH or NAME=V1,V2"))?;
    let (path, integer): (&str, bool) = match name.trim() {
        "readyTarget" => (
            "autoscaling.policy.parameters.roomOccupancy.readyTarget",
            false,
        ),
        "downThreshold" => (
            "autoscaling.policy.parameters.roomOccupancy.downThreshold",
            false,
        ),
        "min" => ("autoscaling.min", true),
        "max" => ("autoscaling.max", true),
        "cooldown" => ("autoscaling.cooldown", true),
        "bufferAmount" => ("autoscaling.policy.parameters.fixedBuffer.amount", true),
        "roomsReplicas" => ("roomsReplicas", true),
        other => (other, false),
    };
    let number = |t: &str| -> Result<f64> {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .with_context(|| format!("--vary {spec}: `{}` is not a number", t.trim()))
    };
    let values = if let Some((low, high)) = range.split_once("..") {
        let (low, high) = (number(low)?, number(high)?);
        if low > high {
            bail!("--vary {spec}: the low end is above the high end");
        }
        let steps = steps.max(2);
        (0..steps)
            .map(|i| low + (high - low) * i as f64 / (steps - 1) as f64)
            .collect()
    } else {
        range.split(',').map(number).collect::<Result<Vec<f64>>>()?
    };
    let mut values: Vec<f64> = if integer {
        values.iter().map(|v| v.round()).collect()
    } else {
        values
    };
    values.dedup();
    Ok(Parameter {
        name: name.trim().to_string(),
        path: path.split('.').map(str::to_string).collect(),
        integer,
        values,
    })
}

fn set(document: &mut Value, path: &[String], value: Value) -> Result<()> {
    let mut node = document;
    for (i, key) in path.iter().enumerate() {
        let Value::Object(map) = node else {
            bail!(
                "the scheduler document has no object at {}",
                path[..i].join(".")
            );
        };
        if i + 1 == path.len() {
            map.insert(key.clone(), value);
            return Ok(());
        }
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq)]
struct Condition {
    metric: String,
    at_most: bool,
    limit: f64,
    /// Compared as a share (percent) of the requested matches.
    percent: bool,
}

fn goal(text: &str) -> Result<Vec<Condition>> {
    let conditions = text
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let (metric, at_most, limit) = if let Some((m, l)) = c.split_once("<=") {
                (m, true, l)
            } else if let Some((m, l)) = c.split_once(">=") {
                (m, false, l)
            } else {
                bail!("--goal: `{c}`: expected METRIC<=VALUE or METRIC>=VALUE");
            };
            let limit = limit.trim();
            let (number, percent) = match limit.strip_suffix('%') {
                Some(n) => (n, true),
                None => (limit, false),
            };
            let limit: f64 = number
                .trim()
                .parse()
                .with_context(|| format!("--goal: `{c}`: `{limit}` is not a number"))?;
            Ok(Condition {
                metric: metric.trim().to_string(),
                at_most,
                limit,
                percent,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if conditions.is_empty() {
        bail!("--goal: no condition");
    }
    Ok(conditions)
}

impl Condition {
    fn value(&self, report: &Report) -> Result<f64> {
        let json = serde_json::to_value(report)?;
        let value = json
            .get(&self.metric)
            .and_then(Value::as_f64)
            .with_context(|| format!("--goal: `{}` is not a number in the report", self.metric))?;
        if self.percent {
            let requested = report.matches_requested.max(1) as f64;
            return Ok(value / requested * 100.0);
        }
        Ok(value)
    }

    fn holds(&self, report: &Report) -> Result<bool> {
        let v = self.value(report)?;
        Ok(if self.at_most {
            v <= self.limit
        } else {
            v >= self.limit
        })
    }
}

#[derive(Clone, Debug, Serialize)]
struct Tried {
    parameters: serde_json::Map<String, Value>,
    cost: f64,
    meets_goal: bool,
    /// Each goal metric's value, as compared.
    measured: serde_json::Map<String, Value>,
    report: Report,
    #[serde(skip)]
    document: Value,
}

fn number_value(integer: bool, v: f64) -> Value {
    if integer {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64((v * 1e6).round() / 1e6).map_or(Value::Null, Value::Number)
    }
}

pub fn tune(args: TuneArgs) -> Result<()> {
    let base = SchedulerFile::read(&args.scheduler)?;
    let demand = super::load_demand(&args.demand)?;
    let conditions = goal(&args.goal)?;
    let parameters = args
        .vary
        .iter()
        .map(|v| parameter(v, args.steps))
        .collect::<Result<Vec<_>>>()?;
    let combinations: usize = parameters.iter().map(|p| p.values.len()).product();
    if combinations > MAX_POLICIES {
        bail!(
            "--vary: {combinations} policies to try, more than {MAX_POLICIES}: fewer --steps or values"
        );
    }
    let nodes = args.demand.policy.node_cpu.is_some();
    let mut grid: Vec<Vec<f64>> = vec![vec![]];
    for p in &parameters {
        grid = grid
            .into_iter()
            .flat_map(|prefix| {
                p.values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(*v);
                    next
                })
            })
            .collect();
    }
    let run = |grid| {
        evaluate(
            &base,
            &demand,
            &args.demand,
            &parameters,
            &conditions,
            nodes,
            grid,
        )
    };
    let mut tried = run(grid)?;
    // One parameter: bisect between the cheapest success and the cheaper
    // failure next to it.
    if parameters.len() == 1 {
        for _ in 0..args.refine {
            tried.sort_by(|a, b| a.cost.total_cmp(&b.cost));
            let Some(best) = tried.iter().position(|t| t.meets_goal) else {
                break;
            };
            let Some(cheaper) = best.checked_sub(1) else {
                break;
            };
            let name = &parameters[0].name;
            let (a, b) = (
                tried[best].parameters[name].as_f64().unwrap_or(0.0),
                tried[cheaper].parameters[name].as_f64().unwrap_or(0.0),
            );
            let mut mid = (a + b) / 2.0;
            if parameters[0].integer {
                mid = mid.round();
            }
            if mid == a || mid == b {
                break;
            }
            let more = run(vec![vec![mid]])?;
            tried.extend(more);
        }
    }
    tried.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    let unit = if nodes { "node-hours" } else { "room-hours" };
    println!("{:<40} {:>14}  goal", "parameters", unit);
    for t in &tried {
        let params: Vec<String> = t
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let measured: Vec<String> = t.measured.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<40} {:>14.1}  {} ({})",
            params.join(" "),
            t.cost,
            if t.meets_goal { "met" } else { "missed" },
            measured.join(", ")
        );
    }
    let best = tried.iter().find(|t| t.meets_goal).cloned();
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let summary = serde_json::json!({
            "goal": args.goal,
            "cost": unit,
            "best": best.as_ref().map(|b| serde_json::json!({"parameters": b.parameters, "cost": b.cost, "report": b.report})),
            "frontier": tried,
        });
        std::fs::write(
            out.join("tune.json"),
            serde_json::to_string_pretty(&summary)? + "\n",
        )?;
        let points: Vec<super::plot::FrontierPoint> = tried
            .iter()
            .map(|t| super::plot::FrontierPoint {
                label: t
                    .parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                cost: t.cost,
                miss: t
                    .measured
                    .values()
                    .next()
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                meets_goal: t.meets_goal,
            })
            .collect();
        let miss_name = conditions
            .first()
            .map(|c| c.metric.clone())
            .unwrap_or_default();
        let svg = super::plot::frontier_svg(unit, &miss_name, &points)?;
        std::fs::write(out.join("frontier.svg"), svg)?;
        if let Some(best) = &best {
            let yaml = serde_saphyr::to_string(&best.document)
                .map_err(|e| anyhow::anyhow!("writing best.yaml: {e}"))?;
            std::fs::write(out.join("best.yaml"), yaml)?;
        }
        println!(
            "wrote {}/{{tune.json,frontier.svg{}}}",
            out.display(),
            if best.is_some() { ",best.yaml" } else { "" }
        );
    }
    match best {
        Some(best) => {
            let params: Vec<String> = best
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "cheapest policy meeting the goal: {} ({:.1} {unit})",
                params.join(" "),
                best.cost
            );
            Ok(())
        }
        None => bail!("no policy tried meets the goal {}", args.goal),
    }
}

fn evaluate(
    base: &SchedulerFile,
    demand: &Demand,
    args: &DemandArgs,
    parameters: &[Parameter],
    conditions: &[Condition],
    nodes: bool,
    policies: Vec<Vec<f64>>,
) -> Result<Vec<Tried>> {
    let mut jobs = Vec::new();
    for values in policies {
        let mut document = base.document.clone();
        let mut named = serde_json::Map::new();
        for (p, v) in parameters.iter().zip(&values) {
            let value = number_value(p.integer, *v);
            set(&mut document, &p.path, value.clone())
                .with_context(|| format!("--vary {}", p.name))?;
            named.insert(p.name.clone(), value);
        }
        let scheduler = scheduler_of(&document).with_context(|| {
            let params: Vec<String> = named.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("the scheduler with {}", params.join(" "))
        })?;
        jobs.push((named, document, plan_config(scheduler, args)?));
    }
    let total = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let results = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let job = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                    let Some((i, (named, document, config))) = job else {
                        break;
                    };
                    let outcome = plan::run(&config, demand, |_| {});
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, named, document, outcome));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, ..)| *i);
    let mut tried = Vec::with_capacity(results.len());
    for (_, named, document, outcome) in results {
        let report = outcome?.report;
        let mut measured = serde_json::Map::new();
        let mut meets_goal = report.occupied_rooms_deleted == 0;
        for c in conditions {
            let v = c.value(&report)?;
            measured.insert(
                format!("{}{}", c.metric, if c.percent { "%" } else { "" }),
                serde_json::Number::from_f64((v * 1e4).round() / 1e4)
                    .map_or(Value::Null, Value::Number),
            );
            meets_goal &= c.holds(&report)?;
        }
        let cost = if nodes {
            report.node_hours
        } else {
            report.room_hours
        };
        tried.push(Tried {
            parameters: named,
            cost,
            meets_goal,
            measured,
            report,
            document,
        });
    }
    eprintln!("tried {total} policies");
    Ok(tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_lists_and_paths() {
        let p = parameter("readyTarget=0.1..0.5", 5).unwrap();
        assert_eq!(p.values, vec![0.1, 0.2, 0.30000000000000004, 0.4, 0.5]);
        assert_eq!(p.path.last().map(String::as_str), Some("readyTarget"));
        let p = parameter("max=10..20", 4).unwrap();
        assert_eq!(p.values, vec![10.0, 13.0, 17.0, 20.0]);
        assert!(p.integer);
        let p = parameter("autoscaling.cooldown=0,30,60", 9).unwrap();
        assert_eq!(p.values, vec![0.0, 30.0, 60.0]);
        assert!(parameter("readyTarget=0.5..0.1", 3).is_err());
        assert!(parameter("readyTarget", 3).is_err());
        let err = parameter("min=a..3", 3).unwrap_err().to_string();
        assert!(err.contains("`a` is not a number"), "{err}");
    }

    #[test]
    fn goals_parse_and_name_what_is_wrong() {
        let g = goal("wait_p99_s<=10, matches_dropped<=0.1%").unwrap();
        assert_eq!(g.len(), 2);
        assert!(g[1].percent && g[1].at_most && g[1].limit == 0.1);
        assert!(goal("wait_p99_s=10").is_err());
        assert!(goal("").is_err());
        assert!(
            goal("wait_p99_s<=ten")
                .unwrap_err()
                .to_string()
                .contains("ten")
        );
    }

    #[test]
    fn set_creates_the_path() {
        let mut d = serde_json::json!({"autoscaling": {"min": 1}});
        set(
            &mut d,
            &["autoscaling".into(), "policy".into(), "x".into()],
            Value::from(2),
        )
        .unwrap();
        assert_eq!(d["autoscaling"]["policy"]["x"], 2);
        assert_eq!(d["autoscaling"]["min"], 1);
    }
}
