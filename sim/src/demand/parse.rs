//! The importers: text in, [`Imported`] out, every problem located.

use std::time::Duration;

use maestro_engine::{Millis, Time};

use super::{Demand, DemandError, Imported, MatchSpec, Series, Warning};

/// How a demand file is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `AppID,Date,AvgPlayers` rows; the rows of one app are used.
    SteamCharts { app_id: u64 },
    /// A header line, then `time,value` whatever the column names.
    Series,
    /// One row per player session with its start and end time.
    Sessions,
    /// Standard Workload Format job log: each job a match.
    Swf,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Format::SteamCharts { .. } => "steamcharts",
            Format::Series => "series",
            Format::Sessions => "sessions",
            Format::Swf => "swf",
        }
    }
}

/// Imports `text`, read from `file` (named in every warning and error).
/// Zero samples are glitches of the collectors and are dropped; a gap in
/// a series is interpolated up to `max_gap` and held beyond it; each with a
/// warning.
pub fn parse(
    file: &str,
    text: &str,
    format: &Format,
    max_gap: Millis,
) -> Result<Imported, DemandError> {
    let mut ctx = Ctx {
        file: file.to_string(),
        warnings: Vec::new(),
    };
    let demand = match format {
        Format::SteamCharts { app_id } => {
            let samples = steamcharts(&mut ctx, text, *app_id)?;
            Demand::Players(ctx.series(samples, max_gap)?)
        }
        Format::Series => {
            let samples = series(&mut ctx, text)?;
            Demand::Players(ctx.series(samples, max_gap)?)
        }
        Format::Sessions => Demand::Sessions(sessions(&mut ctx, text)?),
        Format::Swf => Demand::Matches(swf(&mut ctx, text)?),
    };
    Ok(Imported {
        demand,
        warnings: ctx.warnings,
    })
}

struct Ctx {
    file: String,
    warnings: Vec<Warning>,
}

impl Ctx {
    fn field(&self, line: usize, field: &str, problem: impl Into<String>) -> DemandError {
        DemandError::Field {
            file: self.file.clone(),
            line,
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    fn line_error(&self, line: usize, problem: impl Into<String>) -> DemandError {
        DemandError::Line {
            file: self.file.clone(),
            line,
            problem: problem.into(),
        }
    }

    fn file_error(&self, problem: impl Into<String>) -> DemandError {
        DemandError::File {
            file: self.file.clone(),
            problem: problem.into(),
        }
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.clone(),
            line,
            message: message.into(),
        });
    }

    /// Samples `(line, time, value)` in file order to a series: zeros
    /// dropped, time order checked, gaps reported.
    fn series(
        &mut self,
        samples: Vec<(usize, Time, f64)>,
        max_gap: Millis,
    ) -> Result<Series, DemandError> {
        let mut points: Vec<(Time, f64)> = Vec::with_capacity(samples.len());
        let mut lines: Vec<usize> = Vec::with_capacity(samples.len());
        for (line, time, value) in samples {
            if let Some(&(last, _)) = points.last()
                && time < last
            {
                return Err(
                    self.line_error(line, "the time goes back: samples must be in time order")
                );
            }
            if value == 0.0 {
                self.warn(line, "a zero sample (a collector glitch): dropped");
                continue;
            }
            if points.last().is_some_and(|&(last, _)| last == time) {
                self.warn(
                    line,
                    "a second sample at the same time: it replaces the first",
                );
                points.pop();
                lines.pop();
            }
            points.push((time, value));
            lines.push(line);
        }
        if points.is_empty() {
            return Err(self.file_error("no usable sample (every one is zero or there are none)"));
        }
        // Gaps: against the median step of the series.
        let mut steps: Vec<u64> = points.windows(2).map(|w| w[1].0.since(w[0].0).0).collect();
        steps.sort_unstable();
        let median = steps
            .get(steps.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0);
        for (i, w) in points.windows(2).enumerate() {
            let gap = w[1].0.since(w[0].0);
            let line = lines[i + 1];
            if gap > max_gap {
                self.warn(
                    line,
                    format!(
                        "a gap of {} before this sample, longer than the {} interpolation limit: the earlier value is held",
                        human(gap),
                        human(max_gap)
                    ),
                );
            } else if median > 0 && gap.0 > median.saturating_mul(3) / 2 {
                self.warn(
                    line,
                    format!(
                        "a gap of {} before this sample (the usual step is {}): interpolated",
                        human(gap),
                        human(Millis(median))
                    ),
                );
            }
        }
        Ok(Series { points, max_gap })
    }
}

fn human(m: Millis) -> String {
    humantime::format_duration(Duration::from_secs(m.0 / 1000)).to_string()
}

/// The fields of a CSV line, trimmed (no quoting in these files; a quoted
/// field keeps its quotes removed).
fn fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect()
}

/// Lines with their 1-based numbers, blank ones skipped.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// A time as `YYYY-MM-DD HH:MM[:SS]` (UTC), RFC 3339, `DD/MM/YYYY HH:MM`
/// or epoch seconds.
pub(crate) fn parse_time(text: &str) -> Option<Time> {
    let text = text.trim();
    let millis = if let Ok(secs) = text.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        (secs * 1000.0).round() as i64
    } else if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        ts.as_millisecond()
    } else {
        let civil = [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%d/%m/%Y %H:%M",
            "%d/%m/%Y %H:%M:%S",
        ]
        .iter()
        .find_map(|f| jiff::civil::DateTime::strptime(f, text).ok())?;
        civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_millisecond()
    };
    u64::try_from(millis).ok().map(Time)
}

const TIME_FORMATS: &str = "YYYY-MM-DD HH:MM:SS (UTC), RFC 3339 or epoch seconds";

fn number(ctx: &Ctx, line: usize, field: &str, text: &str) -> Result<f64, DemandError> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err(ctx.field(
            line,
            field,
            format!("`{text}` must be a number of 0 or more"),
        )),
        Err(_) => Err(ctx.field(line, field, format!("`{text}` is not a number"))),
    }
}

fn steamcharts(
    ctx: &mut Ctx,
    text: &str,
    app_id: u64,
) -> Result<Vec<(usize, Time, f64)>, DemandError> {
    let mut it = lines(text);
    let Some((n, header)) = it.next() else {
        return Err(ctx.file_error("is empty: expected the header AppID,Date,AvgPlayers"));
    };
    let names = fields(header);
    if names.len() < 3 || !names[0].eq_ignore_ascii_case("AppID") {
        return Err(ctx.line_error(
            n,
            format!("expected the header AppID,Date,AvgPlayers, found `{header}`"),
        ));
    }
    let mut samples = Vec::new();
    let mut apps: Vec<u64> = Vec::new();
    for (n, line) in it {
        let f = fields(line);
        if f.len() < 3 {
            return Err(ctx.line_error(
                n,
                format!(
                    "expected 3 fields (AppID,Date,AvgPlayers), found {}",
                    f.len()
                ),
            ));
        }
        let app: u64 = f[0]
            .parse()
            .map_err(|_| ctx.field(n, "AppID", format!("`{}` is not a whole number", f[0])))?;
        if apps.last() != Some(&app) && !apps.contains(&app) {
            apps.push(app);
        }
        if app != app_id {
            continue;
        }
        let time = parse_time(f[1]).ok_or_else(|| {
            ctx.field(
                n,
                "Date",
                format!("`{}` is not a time ({TIME_FORMATS})", f[1]),
            )
        })?;
        let value = number(ctx, n, "AvgPlayers", f[2])?;
        samples.push((n, time, value));
    }
    if samples.is_empty() {
        let listed: Vec<String> = apps.iter().take(12).map(u64::to_string).collect();
        return Err(ctx.file_error(format!(
            "no rows for app {app_id}; the file has {} apps: {}{}",
            apps.len(),
            listed.join(", "),
            if apps.len() > 12 { ", …" } else { "" }
        )));
    }
    Ok(samples)
}

fn series(ctx: &mut Ctx, text: &str) -> Result<Vec<(usize, Time, f64)>, DemandError> {
    let mut it = lines(text);
    let Some((_, header)) = it.next() else {
        return Err(ctx.file_error("is empty: expected a header line, then time,value rows"));
    };
    let names = fields(header);
    let (time_name, value_name) = match names.as_slice() {
        [t, v] => (t.to_string(), v.to_string()),
        _ => {
            return Err(ctx.line_error(
                1,
                format!("expected a header of two columns (time,value), found `{header}`"),
            ));
        }
    };
    let mut samples = Vec::new();
    for (n, line) in it {
        let f = fields(line);
        if f.len() != 2 {
            return Err(ctx.line_error(
                n,
                format!(
                    "expected 2 fields ({time_name},{value_name}), found {}",
                    f.len()
                ),
            ));
        }
        let time = parse_time(f[0]).ok_or_else(|| {
            ctx.field(
                n,
                &time_name,
                format!("`{}` is not a time ({TIME_FORMATS})", f[0]),
            )
        })?;
        let value = number(ctx, n, &value_name, f[1])?;
        samples.push((n, time, value));
    }
    Ok(samples)
}

fn sessions(ctx: &mut Ctx, text: &str) -> Result<Vec<MatchSpec>, DemandError> {
    let mut it = lines(text);
    let Some((_, header)) = it.next() else {
        return Err(ctx.file_error("is empty: expected a header with start and end time columns"));
    };
    let names = fields(header);
    let find = |want: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(want))
            .or_else(|| {
                names
                    .iter()
                    .position(|n| n.to_ascii_lowercase().contains(want))
            })
    };
    let (Some(start_col), Some(end_col)) = (
        find("start_time").or_else(|| find("start")),
        find("end_time").or_else(|| find("end")),
    ) else {
        return Err(ctx.line_error(1, format!("expected columns named start_time and end_time (or containing start and end), found `{header}`")));
    };
    let (start_name, end_name) = (names[start_col].to_string(), names[end_col].to_string());
    let mut matches = Vec::new();
    for (n, line) in it {
        let f = fields(line);
        let (Some(start), Some(end)) = (f.get(start_col), f.get(end_col)) else {
            return Err(ctx.line_error(
                n,
                format!(
                    "expected at least {} fields, found {}",
                    start_col.max(end_col) + 1,
                    f.len()
                ),
            ));
        };
        let start_at = parse_time(start).ok_or_else(|| {
            ctx.field(
                n,
                &start_name,
                format!("`{start}` is not a time ({TIME_FORMATS} or DD/MM/YYYY HH:MM)"),
            )
        })?;
        if end.is_empty() {
            ctx.warn(n, format!("no {end_name}: the session is skipped"));
            continue;
        }
        let end_at = parse_time(end).ok_or_else(|| {
            ctx.field(
                n,
                &end_name,
                format!("`{end}` is not a time ({TIME_FORMATS} or DD/MM/YYYY HH:MM)"),
            )
        })?;
        if end_at < start_at {
            ctx.warn(
                n,
                format!("{end_name} is before {start_name}: the session is skipped"),
            );
            continue;
        }
        matches.push(MatchSpec {
            at: start_at,
            // A session within one minute still holds a room for a moment.
            duration: end_at.since(start_at).max(Millis(1_000)),
            players: 1,
        });
    }
    if matches.is_empty() {
        return Err(ctx.file_error("no usable session"));
    }
    // Session logs are not always in start order.
    matches.sort_by_key(|m| m.at);
    Ok(matches)
}

fn swf(ctx: &mut Ctx, text: &str) -> Result<Vec<MatchSpec>, DemandError> {
    let mut origin: u64 = 0;
    let mut matches = Vec::new();
    for (n, line) in lines(text) {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix(';') {
            if let Some(value) = comment.trim().strip_prefix("UnixStartTime:") {
                origin = value.trim().parse().map_err(|_| {
                    ctx.field(
                        n,
                        "UnixStartTime",
                        format!("`{}` is not a whole number", value.trim()),
                    )
                })?;
            }
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            return Err(ctx.line_error(n, format!("expected the 18 SWF fields, found {}", f.len())));
        }
        let int = |i: usize, name: &str| -> Result<i64, DemandError> {
            f[i].parse::<f64>()
                .map(|v| v as i64)
                .map_err(|_| ctx.field(n, name, format!("`{}` is not a number", f[i])))
        };
        let submit = int(1, "submit time")?;
        let run = int(3, "run time")?;
        let procs = int(4, "allocated processors")?;
        if submit < 0 {
            return Err(ctx.field(n, "submit time", format!("`{}` must not be negative", f[1])));
        }
        if run <= 0 {
            ctx.warn(n, "a job with no run time: skipped");
            continue;
        }
        let at = (submit as u64)
            .checked_add(origin)
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| ctx.field(n, "submit time", format!("`{}` is out of range", f[1])))?;
        let duration = (run as u64)
            .checked_mul(1000)
            .ok_or_else(|| ctx.field(n, "run time", format!("`{}` is out of range", f[3])))?;
        matches.push(MatchSpec {
            at: Time(at),
            duration: Millis(duration),
            players: u32::try_from(procs.max(1)).unwrap_or(u32::MAX),
        });
    }
    if matches.is_empty() {
        return Err(ctx.file_error("no job lines"));
    }
    matches.sort_by_key(|m| m.at);
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Millis = Millis::from_secs(6 * 3600);

    fn players(imported: &Imported) -> &Series {
        match &imported.demand {
            Demand::Players(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn steamcharts_keeps_one_app_drops_zeros_and_warns_where() {
        let text = "AppID,Date,AvgPlayers\n440,2025-03-17 13:01:50,44997\n570,2025-03-17 13:01:46,485707\n570,2025-03-17 14:01:46,0\n570,2025-03-17 15:01:46,480000\n570,2025-03-17 16:01:46,470000\n";
        let imported = parse("sc.csv", text, &Format::SteamCharts { app_id: 570 }, GAP).unwrap();
        let s = players(&imported);
        assert_eq!(s.points.len(), 3);
        assert_eq!(s.points[0].1, 485_707.0);
        assert_eq!(imported.warnings.len(), 2, "{:?}", imported.warnings);
        assert_eq!(imported.warnings[0].line, 4);
        assert!(
            imported.warnings[0]
                .to_string()
                .starts_with("sc.csv:4: a zero sample")
        );
        assert!(
            imported.warnings[1].message.contains("a gap of 2h"),
            "{:?}",
            imported.warnings[1]
        );
        // The missing hour is interpolated.
        let mid = s.points[0].0 + Millis::from_secs(3600);
        assert!((s.at(mid) - 482_853.5).abs() < 1.0, "{}", s.at(mid));
        let err = parse("sc.csv", text, &Format::SteamCharts { app_id: 1 }, GAP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sc.csv: no rows for app 1; the file has 2 apps: 440, 570"
        );
    }

    #[test]
    fn a_malformed_line_names_the_file_line_and_field() {
        let text = "AppID,Date,AvgPlayers\n570,2025-03-17 13:01:46,lots\n";
        let err = parse("sc.csv", text, &Format::SteamCharts { app_id: 570 }, GAP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sc.csv:2: AvgPlayers: `lots` is not a number"
        );
        let text = "time, num\n2025-04-20 15:16:38,651\nyesterday,5\n";
        let err = parse("s.csv", text, &Format::Series, GAP).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s.csv:3: time: `yesterday` is not a time"),
            "{err}"
        );
        let text = "time, num\n2025-04-20 15:16:38,651\n2025-04-20 14:16:38,651\n";
        let err = parse("s.csv", text, &Format::Series, GAP).unwrap_err();
        assert!(
            err.to_string().starts_with("s.csv:3: the time goes back"),
            "{err}"
        );
    }

    #[test]
    fn series_reads_any_names_and_three_time_forms_and_holds_across_long_gaps() {
        let text = "when , players\n2025-04-20 15:00:00, 100\n2025-04-20T16:00:00Z,200\n1745168400,300\n2025-04-21 16:00:00,50\n";
        let imported = parse("s.csv", text, &Format::Series, GAP).unwrap();
        let s = players(&imported);
        let t0 = s.points[0].0;
        assert_eq!(
            s.points
                .iter()
                .map(|p| p.0.since(t0).0 / 1000)
                .collect::<Vec<_>>(),
            vec![0, 3600, 7200, 90_000]
        );
        // 18 h to the last sample: beyond the 6 h limit, held.
        assert_eq!(s.at(t0 + Millis::from_secs(20_000)), 300.0);
        assert_eq!(imported.warnings.len(), 1);
        assert_eq!(imported.warnings[0].line, 5);
    }

    #[test]
    fn sessions_become_matches_in_start_order_and_a_missing_end_is_skipped() {
        let text = "hashedEmail,start_time,end_time,original_start_time,original_end_time\nab,30/06/2024 18:12,30/06/2024 18:24,1.71977E+12,1.71977E+12\ncd,17/06/2024 23:33,17/06/2024 23:46,1.71867E+12,1.71867E+12\nef,18/06/2024 10:00,,,\n";
        let imported = parse("m.csv", text, &Format::Sessions, GAP).unwrap();
        let Demand::Sessions(m) = &imported.demand else {
            panic!()
        };
        assert_eq!(m.len(), 2);
        assert!(m[0].at < m[1].at);
        assert_eq!(m[0].duration, Millis::from_secs(13 * 60));
        assert_eq!(imported.warnings[0].line, 4);
        let err = parse(
            "m.csv",
            "a,start_time,end_time\nx,31/02/2024 10:00,\n",
            &Format::Sessions,
            GAP,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("m.csv:2: start_time: `31/02/2024 10:00`"),
            "{err}"
        );
    }

    #[test]
    fn swf_jobs_are_matches_from_the_log_start() {
        let text = "; UnixStartTime: 749458803\n; MaxProcs: 128\n    1        0     -1   1451  128     -1    -1   -1     -1    -1 -1   1   1  -1 -1 -1 -1 -1\n   57    25574     -1     10    1     -1    -1   -1     -1    -1 -1   4   1   2 -1 -1 -1 -1\n   58    25575     -1     0    1     -1    -1   -1     -1    -1 -1   4   1   2 -1 -1 -1 -1\n";
        let imported = parse("n.swf", text, &Format::Swf, GAP).unwrap();
        let Demand::Matches(m) = &imported.demand else {
            panic!()
        };
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            MatchSpec {
                at: Time(749_458_803_000),
                duration: Millis(1_451_000),
                players: 128
            }
        );
        assert_eq!(m[1].at, Time((749_458_803 + 25_574) * 1000));
        assert_eq!(imported.warnings.len(), 1);
        let err = parse("n.swf", "1 x -1 10 1\n", &Format::Swf, GAP).unwrap_err();
        assert_eq!(err.to_string(), "n.swf:1: submit time: `x` is not a number");
        // Times past what milliseconds since 1970 hold are refused, not
        // wrapped (a fuzz finding).
        let err = parse("n.swf", "1 1e300 -1 10 1\n", &Format::Swf, GAP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "n.swf:1: submit time: `1e300` is out of range"
        );
        let err = parse("n.swf", "1 0 -1 1e300 1\n", &Format::Swf, GAP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "n.swf:1: run time: `1e300` is out of range"
        );
    }
}
