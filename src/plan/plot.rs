//! The planner's plots (SVG, with plotters) and its HTML page, which
//! embeds them and needs no network to open.

use anyhow::{Result, anyhow};
use maestro_sim::plan::{Report, TimelineRow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const SIZE: (u32, u32) = (1100, 700);
/// Points drawn per line at most: a long run is thinned to the maximum of
/// each field over equal buckets, so peaks survive and the file stays small.
const MAX_POINTS: usize = 1_500;

fn thin(rows: &[TimelineRow]) -> Vec<TimelineRow> {
    let bucket = rows.len().div_ceil(MAX_POINTS).max(1);
    rows.chunks(bucket)
        .map(|chunk| {
            let mut row = chunk[0].clone();
            for r in &chunk[1..] {
                row.ready = row.ready.max(r.ready);
                row.occupied = row.occupied.max(r.occupied);
                row.pending = row.pending.max(r.pending);
                row.desired = row.desired.max(r.desired);
                row.demand = row.demand.max(r.demand);
                row.waiting = row.waiting.max(r.waiting);
                row.nodes = row.nodes.max(r.nodes);
                row.pods_pending = row.pods_pending.max(r.pods_pending);
            }
            row
        })
        .collect()
}

/// One column of the timeline.
type Field = fn(&TimelineRow) -> u64;

fn hours(row: &TimelineRow) -> f64 {
    row.minute as f64 / 60.0
}

/// Rooms by status against demand over time (top), matches waiting
/// (bottom).
pub fn timeline_svg(title: &str, rows: &[TimelineRow]) -> Result<String> {
    let rows = &thin(rows)[..];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (top, bottom) = root.split_vertically(SIZE.1 * 7 / 10);
        let end = rows.last().map_or(1.0, hours).max(1.0 / 60.0);
        let peak = rows
            .iter()
            .map(|r| {
                (r.ready + r.occupied + r.pending)
                    .max(r.desired)
                    .max(r.demand)
            })
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut chart = rooms_chart(&top, &format!("{title}: rooms against demand"), end, peak)?;
        let series: [(&str, RGBColor, Field); 5] = [
            ("occupied", RGBColor(200, 60, 40), |r| r.occupied),
            ("ready", RGBColor(40, 150, 60), |r| r.ready),
            ("pending", RGBColor(230, 160, 30), |r| r.pending),
            ("desired", RGBColor(90, 90, 90), |r| r.desired),
            ("demand (matches)", RGBColor(30, 80, 200), |r| r.demand),
        ];
        for (name, color, value) in series {
            let points = rows.iter().map(|r| (hours(r), value(r) as f64));
            line(&mut chart, points, color.stroke_width(2), name)?;
        }
        legend(&mut chart)?;
        let waiting_peak = rows.iter().map(|r| r.waiting).max().unwrap_or(0).max(1) as f64;
        let mut waits = ChartBuilder::on(&bottom)
            .caption("matches waiting for a room", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..waiting_peak * 1.05)
            .map_err(err)?;
        waits.configure_mesh().x_desc("hours").draw().map_err(err)?;
        waits
            .draw_series(LineSeries::new(
                rows.iter().map(|r| (hours(r), r.waiting as f64)),
                RGBColor(150, 40, 150).stroke_width(2),
            ))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Several runs' rooms (all statuses) over the same demand.
pub fn overlay_svg(runs: &[(String, &[TimelineRow])]) -> Result<String> {
    let thinned: Vec<(String, Vec<TimelineRow>)> = runs
        .iter()
        .map(|(name, rows)| (name.clone(), thin(rows)))
        .collect();
    let runs: Vec<(String, &[TimelineRow])> = thinned
        .iter()
        .map(|(name, rows)| (name.clone(), rows.as_slice()))
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let end = runs
            .iter()
            .filter_map(|(_, rows)| rows.last().map(hours))
            .fold(1.0 / 60.0, f64::max);
        let peak = runs
            .iter()
            .flat_map(|(_, rows)| rows.iter())
            .map(|r| (r.ready + r.occupied + r.pending).max(r.demand))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut chart = rooms_chart(&root, "rooms of each policy against demand", end, peak)?;
        if let Some((_, rows)) = runs.first() {
            let points = rows.iter().map(|r| (hours(r), r.demand as f64));
            let style = RGBColor(30, 30, 30).stroke_width(1);
            line(&mut chart, points, style, "demand (matches)")?;
        }
        for (i, (name, rows)) in runs.iter().enumerate() {
            let points = rows
                .iter()
                .map(|r| (hours(r), (r.ready + r.occupied + r.pending) as f64));
            line(&mut chart, points, Palette99::pick(i).stroke_width(2), name)?;
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type RoomsChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Rooms and matches against hours, with its mesh drawn.
fn rooms_chart<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    end: f64,
    peak: f64,
) -> Result<RoomsChart<'a, 'b>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..peak * 1.05)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("hours")
        .y_desc("rooms / matches")
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// One labelled line, with its legend entry.
fn line<'a, 'b>(
    chart: &mut RoomsChart<'a, 'b>,
    points: impl IntoIterator<Item = (f64, f64)>,
    style: ShapeStyle,
    label: &str,
) -> Result<()> {
    chart
        .draw_series(LineSeries::new(points, style))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}

/// The legend of a chart's labelled lines, in a box.
fn legend<'a, 'b: 'a>(chart: &mut RoomsChart<'a, 'b>) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// A self-contained page: a table of the reports, side by side, and the
/// plots inline.
pub fn html(title: &str, reports: &[&Report], svgs: &[&str]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}th{{text-align:left}}</style>\n\
         </head><body>\n<h1>{t}</h1>\n<table>\n",
        t = esc(title)
    );
    let value = serde_json::to_value(reports.iter().collect::<Vec<_>>()).unwrap_or_default();
    let keys: Vec<String> = value
        .get(0)
        .and_then(|v| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    for key in keys {
        page.push_str(&format!("<tr><th>{}</th>", esc(&key)));
        for i in 0..reports.len() {
            let cell = match &value[i][&key] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            page.push_str(&format!("<td>{}</td>", esc(&cell)));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
    for svg in svgs {
        page.push_str("<div>");
        page.push_str(svg);
        page.push_str("</div>\n");
    }
    page.push_str("</body></html>\n");
    page
}

/// One policy tried by `tune`.
pub struct FrontierPoint {
    pub label: String,
    pub cost: f64,
    pub miss: f64,
    pub meets_goal: bool,
}

/// Cost against misses for every policy tried; those meeting the goal
/// filled, the Pareto frontier joined by a line.
pub fn frontier_svg(cost: &str, miss: &str, points: &[FrontierPoint]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max_cost = points.iter().map(|p| p.cost).fold(1e-9, f64::max);
        let max_miss = points.iter().map(|p| p.miss).fold(1e-9, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("cost against {miss} per policy"),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_cost * 1.05, 0.0..max_miss * 1.1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(cost)
            .y_desc(miss)
            .draw()
            .map_err(err)?;
        let mut sorted: Vec<&FrontierPoint> = points.iter().collect();
        sorted.sort_by(|a, b| a.cost.total_cmp(&b.cost));
        let mut frontier = Vec::new();
        let mut best_miss = f64::INFINITY;
        for p in &sorted {
            if p.miss < best_miss {
                best_miss = p.miss;
                frontier.push((p.cost, p.miss));
            }
        }
        chart
            .draw_series(LineSeries::new(
                frontier,
                RGBColor(90, 90, 90).stroke_width(1),
            ))
            .map_err(err)?;
        for p in points {
            let color = if p.meets_goal {
                RGBColor(40, 150, 60)
            } else {
                RGBColor(200, 60, 40)
            };
            let style = if p.meets_goal {
                color.filled()
            } else {
                color.stroke_width(2)
            };
            chart
                .draw_series(std::iter::once(Circle::new((p.cost, p.miss), 5, style)))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    p.label.clone(),
                    (p.cost, p.miss),
                    ("sans-serif", 11),
                )))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
