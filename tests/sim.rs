//! `maestro sim` as a user runs it: on the real traces in ../shared/data,
//! deterministic, with clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn maestro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(args)
        .output()
        .expect("the maestro binary runs")
}

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: the tests read the shared traces from ../shared/data",
        path.display()
    );
    path.display().to_string()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/sim")
        .join(name)
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_royale(out: &Path) -> Output {
    maestro(&[
        "sim",
        "run",
        "--scheduler",
        &example("lean.yaml"),
        "--demand",
        &data("super_animal_royale_steam_ccu_hourly_2025.csv"),
        "--players-per-match",
        "40",
        "--match-duration",
        "lognormal:15m,0.3",
        "--duration",
        "10d",
        "--out",
        out.to_str().unwrap(),
    ])
}

fn without_wall(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"wall_seconds\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_real_trace_replays_to_the_same_report_and_timeline_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let output = run_royale(out);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let stdout = text(&output.stdout);
        assert!(stdout.contains("occupied rooms deleted"), "{stdout}");
    }
    let read = |dir: &PathBuf, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(
        without_wall(&read(&a, "report.json")),
        without_wall(&read(&b, "report.json"))
    );
    assert_eq!(read(&a, "timeline.csv"), read(&b, "timeline.csv"));
    let report: serde_json::Value = serde_json::from_str(&read(&a, "report.json")).unwrap();
    for key in [
        "room_hours",
        "node_hours",
        "peak_rooms",
        "matches_started",
        "matches_waited",
        "wait_p50_s",
        "wait_p99_s",
        "matches_dropped",
        "occupied_rooms_deleted",
        "scale_ups",
        "scale_downs",
        "simulated_seconds",
        "wall_seconds",
        "decision_trace_hash",
    ] {
        assert!(
            report.get(key).is_some(),
            "report.json lacks {key}: {report}"
        );
    }
    assert_eq!(report["occupied_rooms_deleted"], 0);
    assert!(
        report["matches_started"].as_u64().unwrap() > 5_000,
        "{report}"
    );
    // Ten days and the warm-up hour, a row a minute.
    assert_eq!(
        read(&a, "timeline.csv").lines().count(),
        1 + 10 * 24 * 60 + 1
    );
    let html = read(&a, "report.html");
    assert!(
        html.contains("<svg") && html.contains("room_hours"),
        "a self-contained page"
    );
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "no network"
    );
    assert!(read(&a, "report.svg").contains("rooms against demand"));
}

#[test]
fn compare_runs_each_policy_on_the_same_demand() {
    let dir = tempfile::tempdir().unwrap();
    let output = maestro(&[
        "sim",
        "compare",
        "--scheduler",
        &example("lean.yaml"),
        "--scheduler",
        &example("generous.yaml"),
        "--demand",
        "synthetic:days=1,peak=3000,trough=800",
        "--players-per-match",
        "40",
        "--match-duration",
        "fixed:15m",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let room_hours: Vec<f64> = stdout
        .lines()
        .find(|l| l.starts_with("room-hours"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(room_hours.len(), 2, "{stdout}");
    assert!(
        room_hours[1] > room_hours[0],
        "the generous policy costs more: {stdout}"
    );
    assert!(dir.path().join("compare.svg").exists());
    assert!(dir.path().join("1-lean/report.json").exists());
    assert!(dir.path().join("2-generous/report.json").exists());
}

#[test]
fn tune_finds_the_cheapest_policy_meeting_the_goal_and_writes_a_postable_file() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--scheduler",
        &example("lean.yaml"),
        "--demand",
        "synthetic:days=1,peak=3000,trough=800,noise=0.05",
        "--players-per-match",
        "40",
        "--match-duration",
        "fixed:15m",
        "--start-latency",
        "fixed:40s",
        "--vary",
        "readyTarget=0.02..0.6",
        "--steps",
        "4",
    ];
    let mut args = vec!["sim", "tune"];
    args.extend(common);
    args.extend([
        "--goal",
        "wait_p99_s<=1,matches_dropped<=0%",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let output = maestro(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let tune: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("tune.json")).unwrap())
            .unwrap();
    let best = &tune["best"];
    let best_cost = best["cost"].as_f64().unwrap();
    let frontier = tune["frontier"].as_array().unwrap();
    assert!(frontier.len() >= 4, "{tune}");
    for tried in frontier {
        if tried["meets_goal"] == true {
            assert!(
                tried["cost"].as_f64().unwrap() >= best_cost,
                "the best is the cheapest"
            );
        }
    }
    assert!(
        frontier.iter().any(|t| t["meets_goal"] == false),
        "the lean end misses the goal"
    );
    let best_yaml = std::fs::read_to_string(dir.path().join("best.yaml")).unwrap();
    let target = best["parameters"]["readyTarget"].as_f64().unwrap();
    assert!(
        best_yaml.contains(&format!("readyTarget: {target}")),
        "{best_yaml}"
    );
    assert!(dir.path().join("frontier.svg").exists());
    // The chosen file runs as it is.
    let rerun = maestro(&[
        "sim",
        "run",
        "--scheduler",
        dir.path().join("best.yaml").to_str().unwrap(),
        "--demand",
        "synthetic:days=1,peak=3000,trough=800,noise=0.05",
        "--players-per-match",
        "40",
        "--match-duration",
        "fixed:15m",
        "--start-latency",
        "fixed:40s",
        "--out",
        dir.path().join("rerun").to_str().unwrap(),
    ]);
    assert!(rerun.status.success(), "{}", text(&rerun.stderr));

    // A goal nothing meets: non-zero, and it says so.
    let mut args = vec!["sim", "tune"];
    args.extend(common);
    args.extend(["--goal", "room_hours<=1"]);
    let output = maestro(&args);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("no policy tried meets the goal"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn bad_input_is_named_by_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let demand = dir.path().join("demand.csv");
    std::fs::write(
        &demand,
        "time,players\n2025-01-01 00:00:00,10\n2025-01-01 01:00:00,many\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let args = |scheduler: &str, demand: &str| {
        maestro(&[
            "sim",
            "run",
            "--scheduler",
            scheduler,
            "--demand",
            demand,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let output = args(&example("lean.yaml"), demand.to_str().unwrap());
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("demand.csv:3: players: `many` is not a number"),
        "{stderr}"
    );

    let scheduler = dir.path().join("bad.yaml");
    let lean = std::fs::read_to_string(example("lean.yaml")).unwrap();
    std::fs::write(
        &scheduler,
        lean.replace("readyTarget: 0.1", "readyTarget: 1.5"),
    )
    .unwrap();
    let output = args(scheduler.to_str().unwrap(), "synthetic:days=1");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("readyTarget"),
        "{stderr}"
    );

    let output = maestro(&[
        "sim",
        "run",
        "--scheduler",
        &example("lean.yaml"),
        "--demand",
        &data("steamcharts_hourly_30d_2025.csv"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("needs --app-id"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        !out.join("report.json").exists(),
        "nothing written on an error"
    );
}
