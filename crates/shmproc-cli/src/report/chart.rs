//! SVG bar charts of the ratios (plotters' SVG backend: no system libraries).

use plotters::prelude::*;

use super::{Report, Workload};

type ChartResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The two charts of [`super::CHARTS`] as SVG text: shmproc vs the limit (linear, 1× marked)
/// and shmproc vs Python (log scale, 1× marked).
///
/// # Errors
/// When plotters fails to draw.
pub fn render(r: &Report) -> ChartResult<[String; 2]> {
    let bars = |f: fn(&Workload) -> Option<f64>| -> Vec<(String, f64)> {
        r.workloads
            .iter()
            .filter_map(|w| f(w).map(|v| (w.name.clone(), v)))
            .collect()
    };
    Ok([
        bar_chart(
            "shmproc speed / physical limit, same run (1× = at the limit)",
            &bars(Workload::vs_limit),
            false,
        )?,
        bar_chart(
            "shmproc speed / Python multiprocessing (log scale; above 1× = faster)",
            &bars(Workload::vs_python),
            true,
        )?,
    ])
}

const WIDTH: u32 = 900;
const LABELS: i32 = 260;
const ROW: i32 = 26;
const TOP: i32 = 50;

/// Horizontal bars, one per `(label, ratio)`, with a line at 1×.
fn bar_chart(title: &str, bars: &[(String, f64)], log: bool) -> ChartResult<String> {
    let height = (TOP + ROW * bars.len().max(1) as i32 + 40) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let font = ("sans-serif", 14).into_font();
        root.draw(&Text::new(
            title.to_owned(),
            (10, 15),
            ("sans-serif", 17).into_font(),
        ))?;
        if bars.is_empty() {
            root.draw(&Text::new("(no figures)", (10, TOP), font))?;
            root.present()?;
            drop(root);
            return Ok(svg);
        }
        let max = bars.iter().map(|b| b.1).fold(1.0_f64, f64::max) * 1.1;
        let min = bars.iter().map(|b| b.1).fold(1.0_f64, f64::min) / 1.5;
        let span = (WIDTH as i32 - LABELS - 90) as f64;
        let x = |v: f64| -> i32 {
            let t = if log {
                (v.max(min).log10() - min.log10()) / (max.log10() - min.log10())
            } else {
                v / max
            };
            LABELS + (t.clamp(0.0, 1.0) * span) as i32
        };
        let x0 = if log { LABELS } else { x(0.0) };
        for (i, (label, v)) in bars.iter().enumerate() {
            let y = TOP + ROW * i as i32;
            root.draw(&Text::new(label.clone(), (10, y + 4), font.clone()))?;
            let color = if *v >= 1.0 { GREEN } else { BLUE };
            root.draw(&Rectangle::new(
                [(x0, y + 2), (x(*v).max(x0 + 1), y + ROW - 4)],
                color.mix(0.7).filled(),
            ))?;
            let text = if *v >= 10.0 {
                format!("{v:.0}×")
            } else {
                format!("{v:.2}×")
            };
            root.draw(&Text::new(text, (x(*v) + 6, y + 4), font.clone()))?;
        }
        let one = x(1.0);
        let bottom = TOP + ROW * bars.len() as i32;
        root.draw(&PathElement::new(
            vec![(one, TOP - 6), (one, bottom + 4)],
            BLACK.stroke_width(2),
        ))?;
        root.draw(&Text::new("1×", (one - 8, bottom + 10), font))?;
        root.present()?;
    }
    Ok(svg)
}
