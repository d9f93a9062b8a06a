//! Charts drawn as SVG by the server: bars (grouped or stacked) and lines over one
//! row of labels, with a y axis, grid lines and a legend. Small on purpose: the
//! dashboard's charts are counts over time, and the numbers sit in a table below.

use std::fmt::Write;

use super::html_escape as escape;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bar,
    Line,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
    pub kind: Kind,
}

impl Series {
    pub fn bar(name: &str, values: Vec<f64>) -> Self {
        Self {
            name: name.to_owned(),
            values,
            kind: Kind::Bar,
        }
    }

    pub fn line(name: &str, values: Vec<f64>) -> Self {
        Self {
            name: name.to_owned(),
            values,
            kind: Kind::Line,
        }
    }
}

const COLORS: [&str; 8] = [
    "#3b5bdb", "#f08c00", "#2b8a3e", "#c2255c", "#0c8599", "#7048e8", "#868e96", "#e8590c",
];
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 32.0;

/// The chart as an `<svg>` element; `stacked` stacks the bar series.
pub fn svg(title: &str, labels: &[String], series: &[Series], stacked: bool) -> String {
    let n = labels.len().max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bars: Vec<&Series> = series.iter().filter(|s| s.kind == Kind::Bar).collect();
    let value = |s: &Series, i: usize| s.values.get(i).copied().unwrap_or(0.0);
    let bar_top = |i: usize| -> f64 {
        if stacked {
            bars.iter().map(|s| value(s, i).max(0.0)).sum()
        } else {
            bars.iter().map(|s| value(s, i)).fold(0.0, f64::max)
        }
    };
    let max = (0..n)
        .map(bar_top)
        .chain(
            series
                .iter()
                .filter(|s| s.kind == Kind::Line)
                .flat_map(|s| s.values.iter().copied()),
        )
        .fold(0.0, f64::max);
    let (step, top) = nice_scale(max);
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let slot = plot_w / n as f64;
    let x_center = |i: usize| LEFT + slot * (i as f64 + 0.5);

    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="11">"##,
        escape(title)
    );
    grid(&mut out, top, step);
    // Bars.
    let group = slot * 0.8;
    for i in 0..n {
        let mut base = 0.0;
        for (k, s) in bars.iter().enumerate() {
            let v = value(s, i).max(0.0);
            let color =
                COLORS[series.iter().position(|t| std::ptr::eq(t, *s)).unwrap_or(k) % COLORS.len()];
            let (x, w, from) = if stacked {
                (x_center(i) - group / 2.0, group, base)
            } else {
                let w = group / bars.len() as f64;
                (x_center(i) - group / 2.0 + w * k as f64, w, 0.0)
            };
            let height = y(from) - y(from + v);
            if height > 0.0 {
                let _ = write!(
                    out,
                    r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="{color}"><title>{}: {}</title></rect>"##,
                    y(from + v),
                    (w - 1.0).max(1.0),
                    escape(&format!(
                        "{} {}",
                        s.name,
                        labels.get(i).map_or("", String::as_str)
                    )),
                    short(v)
                );
            }
            if stacked {
                base += v;
            }
        }
    }
    // Lines.
    for (k, s) in series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == Kind::Line)
    {
        let points: Vec<String> = (0..n)
            .map(|i| format!("{:.1},{:.1}", x_center(i), y(value(s, i))))
            .collect();
        let _ = write!(
            out,
            r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"##,
            points.join(" "),
            COLORS[k % COLORS.len()]
        );
    }
    x_labels(&mut out, labels, slot);
    legend(&mut out, series);
    out.push_str("</svg>");
    out
}

/// The grid lines and the y axis's numbers, every `step` up to `top`.
fn grid(out: &mut String, top: f64, step: f64) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h - v / top * plot_h;
    let mut tick = 0.0;
    while tick <= top + step / 2.0 {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e7ec"/><text x="{}" y="{:.1}" text-anchor="end" fill="#5b6776">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(tick) + 4.0,
            short(tick),
            y = y(tick)
        );
        tick += step;
    }
}

/// The x axis's labels under their slots: at most about eight.
fn x_labels(out: &mut String, labels: &[String], slot: f64) {
    let n = labels.len().max(1);
    let x_center = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let every = n.div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#5b6776">{}</text>"##,
            x_center(i),
            HEIGHT - 10.0,
            escape(label)
        );
    }
}

/// The series' names and colours, along the top.
fn legend(out: &mut String, series: &[Series]) {
    let mut x = LEFT;
    for (k, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            r##"<rect x="{x:.1}" y="8" width="10" height="10" fill="{}"/><text x="{:.1}" y="17" fill="#17202a">{}</text>"##,
            COLORS[k % COLORS.len()],
            x + 14.0,
            escape(&s.name)
        );
        x += 24.0 + 6.5 * s.name.len() as f64;
    }
}

/// A grid step of 1, 2 or 5 times a power of ten, and the axis top, for `max`.
fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 4.0);
    }
    let rough = max / 4.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    (step, (max / step).ceil() * step)
}

fn short(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else if v < 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(0.0), (1.0, 4.0));
        assert_eq!(nice_scale(7.0), (2.0, 8.0));
        assert_eq!(nice_scale(130.0), (50.0, 150.0));
    }

    #[test]
    fn a_chart_has_a_bar_per_value_and_escapes_names() {
        let labels = vec!["Jan 1".to_owned(), "Jan 2".to_owned()];
        let svg = svg(
            "growth",
            &labels,
            &[
                Series::bar("<sign-ups>", vec![3.0, 1.0]),
                Series::line("total", vec![3.0, 4.0]),
            ],
            false,
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            2 + 2,
            "two bars and two legend keys"
        );
        assert!(svg.contains("&lt;sign-ups&gt;") && !svg.contains("<sign-ups>"));
        assert!(svg.contains("<polyline"));
    }
}
