//! The SVG report: every figure's ratio with its interquartile range as an error bar, and the
//! lock-step latency percentiles of the server under test and the baseline.

use std::path::Path;

use plotters::prelude::*;

use super::error::BenchError;
use super::options::Scenario;
use super::report::{Figures, Report, Side};

type DrawResult<T> = Result<T, plotters::drawing::DrawingAreaErrorKind<std::io::Error>>;

/// Draws the report into an SVG file at `path`.
pub fn svg(report: &Report, path: &Path) -> Result<(), BenchError> {
    draw(report, path).map_err(|source| BenchError::Svg { path: path.to_owned(), source })
}

fn draw(report: &Report, path: &Path) -> DrawResult<()> {
    let root = SVGBackend::new(path, (1200, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);

    // Ratios to the baseline: the median of the pair ratios, the bar from the first to the
    // third quartile.
    let figures: Vec<(String, &Figures)> = report
        .results
        .iter()
        .filter_map(|r| {
            let label = match r.idle_connections {
                0 if r.clients > 1 => format!("{} {}", r.scenario, r.clients),
                0 => r.scenario.to_string(),
                idle => format!("{} {idle}", r.scenario),
            };
            r.figures.as_ref().map(|f| (label, f))
        })
        .collect();
    let top = figures.iter().map(|(_, f)| f.spread().ratio_high).fold(1.0, f64::max) * 1.15;
    let count = figures.len().max(1);
    let mut chart = ChartBuilder::on(&left)
        .caption("ratio to the baseline (median, interquartile range)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(90)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..count as f64 - 0.5, 0f64..top)?;
    chart
        .configure_mesh()
        .y_desc("ratio")
        .x_labels(count)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            figures.get(i as usize).map_or(String::new(), |(label, _)| label.clone())
        })
        .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
        .draw()?;
    chart.draw_series(LineSeries::new([(-0.5, 1.0), (count as f64 - 0.5, 1.0)], BLACK.mix(0.4)))?;
    chart.draw_series(figures.iter().enumerate().map(|(i, (_, f))| {
        let s = f.spread();
        ErrorBar::new_vertical(i as f64, s.ratio_low, s.ratio, s.ratio_high, BLUE.filled(), 10)
    }))?;

    // Latency of one lock-step client: p50, p99, p99.9.
    let quantiles = ["p50", "p99", "p99.9"];
    let points = |side: &Side| -> Vec<(f64, f64)> {
        [side.p50_us, side.p99_us, side.p999_us]
            .iter()
            .enumerate()
            .filter_map(|(x, v)| v.map(|v| (x as f64, v)))
            .collect()
    };
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in &report.results {
        if let (Some(Figures::Rounds(f)), 1) = (&r.figures, r.clients) {
            if r.repeat == 0 && matches!(r.scenario, Scenario::Lockstep | Scenario::LockstepPinned) {
                lines.push((format!("{} {}", r.server, r.scenario), points(&f.measured)));
                lines.push((format!("baseline {}", r.scenario), points(&f.baseline)));
            }
        }
    }
    let max_us = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&right)
        .caption("lock-step round trip (1 client)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.2f64..2.2, (0.5f64..max_us * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("microseconds")
        .x_labels(3)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            quantiles.get(i as usize).map_or(String::new(), |q| q.to_string())
        })
        .draw()?;
    let palette = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, points)) in lines.into_iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(points, color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    root.present()
}
