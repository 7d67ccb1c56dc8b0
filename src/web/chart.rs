//! A small SVG line chart with axes, ticks and a legend.

use leptos::prelude::*;

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 420.0;
const H: f64 = 220.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;

fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect()
}

/// Renders `series` against shared axes.
#[component]
pub fn LineChart(
    /// Lines to draw.
    series: Vec<Series>,
    /// Title, also the accessible name.
    title: String,
    /// X axis label.
    x_label: String,
) -> impl IntoView {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (x0, x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = if all.is_empty() {
        (0.0, 1.0)
    } else if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 1.0, x1 + 1.0)
    };
    let (y0, y1) = if all.is_empty() {
        (0.0, 1.0)
    } else if y1 > y0 {
        (
            y0.min(0.0).max(y0 - 0.05 * (y1 - y0)),
            y1 + 0.05 * (y1 - y0),
        )
    } else {
        (y0 - 0.5, y1 + 0.5)
    };
    let sx = move |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let sy = move |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
    let lines = series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect::<Vec<_>>()
                .join(" ");
            view! { <polyline points=pts fill="none" stroke=s.color stroke-width="2" /> }
        })
        .collect_view();
    let y_ticks = ticks(y0, y1, 4)
        .into_iter()
        .map(|y| {
            view! {
                <line x1=LEFT x2=W - RIGHT y1=sy(y) y2=sy(y) class="grid" />
                <text x=LEFT - 4.0 y=sy(y) + 4.0 text-anchor="end" class="tick">{format!("{y:.2}")}</text>
            }
        })
        .collect_view();
    let x_ticks = ticks(x0, x1, 4)
        .into_iter()
        .map(|x| view! { <text x=sx(x) y=H - BOTTOM + 14.0 text-anchor="middle" class="tick">{format!("{x:.0}")}</text> })
        .collect_view();
    // The legend sits under the plot, so it never hides a line.
    let legend = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let y = H + 10.0 + 14.0 * i as f64;
            view! {
                <rect x=LEFT y=y - 8.0 width="10" height="10" fill=s.color />
                <text x=LEFT + 15.0 y=y + 1.0 class="legend">{s.name.clone()}</text>
            }
        })
        .collect_view();
    let height = H + 14.0 * series.len() as f64 + 4.0;
    view! {
        <figure class="chart">
            <svg viewBox=format!("0 0 {W} {height}") role="img" aria-label=title.clone()>
                {y_ticks}
                <line x1=LEFT x2=LEFT y1=TOP y2=H - BOTTOM class="axis" />
                <line x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM class="axis" />
                {x_ticks}
                <text x=(LEFT + W - RIGHT) / 2.0 y=H - 4.0 text-anchor="middle" class="axis-label">{x_label}</text>
                {lines}
                {legend}
            </svg>
            <figcaption>{title}</figcaption>
        </figure>
    }
}
