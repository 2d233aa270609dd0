//! Charts as inline SVG drawn on the server: no script, no `style` attributes (the pages'
//! CSP allows neither), colours as SVG presentation attributes, numbers written on the
//! marks so that a chart reads at a glance and prints.

use maud::{Markup, html};

/// Width of every chart in SVG units (the stylesheet scales it to the page).
const WIDTH: i64 = 760;
/// Colour of findings and ordinary bars.
const BLUE: &str = "#0b5cad";
/// Colour of major hazards.
const RED: &str = "#b3261e";
/// Colour of text and the cases line.
const INK: &str = "#1d2733";
/// Colour of axes and grid lines.
const GRID: &str = "#d8dee6";

/// One bar of a horizontal bar chart.
pub struct Bar {
    /// What the bar counts (left of the bar).
    pub label: String,
    /// Its length.
    pub value: i64,
    /// The part of `value` drawn in red from the left (major hazards); 0 for none.
    pub major: i64,
    /// Written right of the bar (the numbers).
    pub note: String,
}

/// A horizontal bar chart, longest bar first as given, with each bar's numbers beside it.
pub fn bars(title: &str, rows: &[Bar]) -> Markup {
    const ROW: i64 = 28;
    const LABEL: i64 = 200;
    const NOTE: i64 = 150;
    let plot = WIDTH - LABEL - NOTE;
    let max = rows.iter().map(|r| r.value).max().unwrap_or(0).max(1);
    let height = ROW * rows.len().max(1) as i64 + 8;
    html! {
        svg.chart-svg.bars xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (height) }
            width=(WIDTH) height=(height) role="img" aria-label=(title) {
            title { (title) }
            @if rows.is_empty() {
                text x=(LABEL) y="20" fill=(INK) font-size="13" { "本期无数据" }
            }
            @for (i, row) in rows.iter().enumerate() {
                @let y = 4 + ROW * i as i64;
                @let length = scaled(row.value, max, plot);
                @let major = scaled(row.major.min(row.value), max, plot);
                g.bar-row {
                    title { (row.label) "：" (row.note) }
                    text x=(LABEL - 8) y=(y + 18) text-anchor="end" fill=(INK) font-size="13" { (short(&row.label, 14)) }
                    rect.bar x=(LABEL) y=(y + 4) width=(length) height="18" fill=(BLUE) {}
                    @if major > 0 {
                        rect.bar.major x=(LABEL) y=(y + 4) width=(major) height="18" fill=(RED) {}
                    }
                    text.value x=(LABEL + length + 6) y=(y + 18) fill=(INK) font-size="13" { (row.note) }
                }
            }
        }
    }
}

/// One bucket of a trend chart.
pub struct Column {
    /// The bucket's axis label.
    pub label: String,
    /// Findings (the column).
    pub findings: i64,
    /// Major findings (the column's red base).
    pub major: i64,
    /// Cases (the line).
    pub cases: i64,
}

/// A column chart of findings per bucket (major hazards in red at the base), with the
/// cases as a line; numbers on the columns while they fit.
pub fn trend(title: &str, columns: &[Column]) -> Markup {
    const HEIGHT: i64 = 260;
    const LEFT: i64 = 44;
    const TOP: i64 = 34;
    const BOTTOM: i64 = 40;
    let plot_w = (WIDTH - LEFT - 10) as f64;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = columns.len().max(1);
    let step = plot_w / n as f64;
    let max = columns
        .iter()
        .map(|c| c.findings.max(c.cases))
        .max()
        .unwrap_or(0)
        .max(1);
    let base = TOP + plot_h;
    let y_of = |v: i64| base - scaled(v, max, plot_h);
    let every = n.div_ceil(8).max(1);
    let numbers = n <= 31;
    let line: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{:.1},{}",
                LEFT as f64 + step * (i as f64 + 0.5),
                y_of(c.cases)
            )
        })
        .collect();
    html! {
        svg.chart-svg.trend xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
            width=(WIDTH) height=(HEIGHT) role="img" aria-label=(title) {
            title { (title) }
            g.legend font-size="12" fill=(INK) {
                rect x=(LEFT) y="8" width="12" height="12" fill=(BLUE) {}
                text x=(LEFT + 16) y="18" { "隐患" }
                rect x=(LEFT + 60) y="8" width="12" height="12" fill=(RED) {}
                text x=(LEFT + 76) y="18" { "重大隐患" }
                line x1=(LEFT + 150) y1="14" x2=(LEFT + 170) y2="14" stroke=(INK) stroke-width="2" {}
                text x=(LEFT + 176) y="18" { "检查案件" }
            }
            line x1=(LEFT) y1=(base) x2=(WIDTH - 10) y2=(base) stroke=(GRID) {}
            line x1=(LEFT) y1=(TOP) x2=(WIDTH - 10) y2=(TOP) stroke=(GRID) stroke-dasharray="4 4" {}
            text x=(LEFT - 6) y=(TOP + 4) text-anchor="end" font-size="12" fill=(INK) { (max) }
            text x=(LEFT - 6) y=(base + 4) text-anchor="end" font-size="12" fill=(INK) { "0" }
            @for (i, c) in columns.iter().enumerate() {
                @let x = LEFT as f64 + step * i as f64 + step * 0.15;
                @let w = (step * 0.7).max(1.0);
                g.column {
                    title { (c.label) "：案件 " (c.cases) "，隐患 " (c.findings) "，重大隐患 " (c.major) }
                    @if c.findings > 0 {
                        rect.bar x=(format!("{x:.1}")) y=(y_of(c.findings)) width=(format!("{w:.1}"))
                            height=(base - y_of(c.findings)) fill=(BLUE) {}
                    }
                    @if c.major > 0 {
                        rect.bar.major x=(format!("{x:.1}")) y=(y_of(c.major)) width=(format!("{w:.1}"))
                            height=(base - y_of(c.major)) fill=(RED) {}
                    }
                    @if numbers && c.findings > 0 {
                        text.value x=(format!("{:.1}", x + w / 2.0)) y=(y_of(c.findings) - 4)
                            text-anchor="middle" font-size="11" fill=(INK) { (c.findings) }
                    }
                    @if i % every == 0 || i + 1 == columns.len() {
                        text x=(format!("{:.1}", x + w / 2.0)) y=(base + 16) text-anchor="middle"
                            font-size="11" fill=(INK) { (axis_label(&c.label)) }
                    }
                }
            }
            polyline.cases points=(line.join(" ")) fill="none" stroke=(INK) stroke-width="2" {}
        }
    }
}

/// `value` of `max` as a length of `full`, at least 1 for a value above zero so that it
/// shows.
fn scaled(value: i64, max: i64, full: i64) -> i64 {
    if value <= 0 {
        0
    } else {
        (value * full / max).max(1)
    }
}

/// Days as `MM-DD`, weeks as `W45`.
fn axis_label(label: &str) -> &str {
    if let Some((_, week)) = label.split_once('-').filter(|(_, w)| w.starts_with('W')) {
        week
    } else {
        label.get(5..).unwrap_or(label)
    }
}

/// At most `chars` characters, with an ellipsis when cut (the bar's title holds it all).
fn short(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(chars - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_write_their_numbers_and_scale_to_the_longest() {
        let rows = [
            Bar {
                label: "310101".into(),
                value: 4,
                major: 1,
                note: "4（重大 1）".into(),
            },
            Bar {
                label: "310104".into(),
                value: 2,
                major: 0,
                note: "2".into(),
            },
        ];
        let svg = bars("按辖区", &rows).into_string();
        assert!(svg.contains("4（重大 1）"), "{svg}");
        assert!(
            svg.contains(r#"width="410""#),
            "the longest bar fills the plot: {svg}"
        );
        assert!(svg.contains(r#"width="205""#), "half as long: {svg}");
        assert!(!svg.contains("style="));
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(axis_label("2026-11-02"), "11-02");
        assert_eq!(axis_label("2026-W45"), "W45");
        assert_eq!(short("上海滨江化工有限公司", 6), "上海滨江化…");
    }
}
