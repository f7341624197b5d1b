//! Reports: Markdown tables (with the command that reproduces them) and PNG plots.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::prelude::*;

/// A table of a report, with the command line that made it.
pub struct Table {
    pub title: String,
    pub command: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table (what the columns mean, the model).
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: &str, command: &str, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            command: command.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("#### {}\n\n`{}`\n\n", self.title, self.command);
        s += &format!("| {} |\n", self.header.join(" | "));
        s += &format!("|{}\n", "---|".repeat(self.header.len()));
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        for n in &self.notes {
            s += &format!("\n{n}\n");
        }
        s
    }
}

/// One line of a plot.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Plot settings.
pub struct Plot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
}

const FONT: &str = "sans-serif";

/// Registers a system TTF font for plot text (plotters draws text with ab_glyph and
/// ships none). `SWARMSITE_SIM_FONT` names one; otherwise common Debian paths.
fn font() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates = std::env::var("SWARMSITE_SIM_FONT").ok().into_iter().chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
            ]
            .map(String::from),
        );
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(
            "no TTF font for plot labels: install fonts-dejavu-core or set SWARMSITE_SIM_FONT"
                .into(),
        )
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws `series` as lines with points into a 1000×600 PNG at `path`.
pub fn line_plot(path: &Path, plot: &Plot, series: &[Series]) -> anyhow::Result<()> {
    font()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let pos = |v: f64, log: bool| if log { v.max(1e-9) } else { v };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        if plot.log_x && x <= 0.0 || plot.log_y && y <= 0.0 {
            continue;
        }
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(anyhow!("nothing to plot in {}", path.display()));
    }
    let pad = |lo: f64, hi: f64, log: bool| {
        if log {
            (lo / 1.5, hi * 1.5)
        } else {
            let d = (hi - lo).max(1e-9) * 0.05;
            (lo - d, hi + d)
        }
    };
    let ((x0, x1), (y0, y1)) = (pad(x0, x1, plot.log_x), pad(y0, y1, plot.log_y));
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root);
    chart
        .caption(plot.title, (FONT, 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .x_desc(plot.x_label)
                .y_desc(plot.y_label)
                .label_style((FONT, 15))
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                let points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter(|(x, y)| !(plot.log_x && *x <= 0.0 || plot.log_y && *y <= 0.0))
                    .map(|(x, y)| (pos(*x, plot.log_x), pos(*y, plot.log_y)))
                    .collect();
                c.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                if points.len() <= 40 {
                    c.draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
                }
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT, 15))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }};
    }
    match (plot.log_x, plot.log_y) {
        (false, false) => draw!(chart.build_cartesian_2d(x0..x1, y0..y1)?),
        (true, false) => draw!(chart.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?),
        (false, true) => draw!(chart.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?),
        (true, true) => {
            draw!(chart.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?)
        }
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_names_its_command() {
        let mut t = Table::new("Title", "cmd --x", &["a", "b"]);
        t.row(vec!["1".into(), "2".into()]);
        t.note("note");
        let md = t.markdown();
        assert!(md.contains("`cmd --x`"));
        assert!(md.contains("| a | b |\n|---|---|\n| 1 | 2 |"));
    }
}
