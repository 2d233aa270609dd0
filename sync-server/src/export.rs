//! Exports of a bulletin as XLSX (one sheet per table) and CSV (every table, each row
//! tagged with its section). Both are written from the same `tables` of one `Bulletin`,
//! so they hold the same numbers by construction.

use rust_xlsxwriter::{Format, Workbook};

use crate::error::{AppError, AppResult};
use crate::stats::{Bulletin, EnterpriseRow, GroupRow};

/// `Content-Type` of XLSX files.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// `Content-Type` of the CSV export.
pub const CSV_TYPE: &str = "text/csv; charset=utf-8";

/// One value of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// Text (codes, labels, names, dates).
    Text(String),
    /// A count.
    Count(i64),
}

/// One table of an export: a sheet of the workbook, a section of the CSV.
#[derive(Debug, Clone)]
pub struct Table {
    /// The sheet's name (Chinese).
    pub sheet: &'static str,
    /// The section's stable code (the first column of the CSV).
    pub section: &'static str,
    /// The header row (Chinese).
    pub header: Vec<&'static str>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

fn text(value: impl Into<String>) -> Cell {
    Cell::Text(value.into())
}

/// The tables of a bulletin, in the order of the sheets.
pub fn tables(b: &Bulletin) -> Vec<Table> {
    let t = &b.totals;
    let mut summary = vec![
        vec![
            text("period_from"),
            text("开始日期"),
            text(b.period.from.to_string()),
        ],
        vec![
            text("period_to"),
            text("结束日期"),
            text(b.period.to.to_string()),
        ],
        vec![
            text("computed_on"),
            text("统计日期"),
            text(b.computed_on.to_string()),
        ],
        vec![text("cases"), text("检查案件数"), Cell::Count(t.cases)],
        vec![text("findings"), text("隐患数"), Cell::Count(t.findings)],
        vec![
            text("major_findings"),
            text("重大隐患数"),
            Cell::Count(t.major_findings),
        ],
        vec![
            text("violations"),
            text("三违数"),
            Cell::Count(t.violations),
        ],
        vec![
            text("rectifications_open"),
            text("未销号整改数"),
            Cell::Count(t.rectifications_open),
        ],
        vec![
            text("rectifications_closed"),
            text("已销号整改数"),
            Cell::Count(t.rectifications_closed),
        ],
        vec![
            text("rectifications_overdue"),
            text("逾期整改数"),
            Cell::Count(t.rectifications_overdue),
        ],
    ];
    let l = &b.hazard_loop;
    for (code, label, count) in [
        ("loop.found", "期间发现隐患数", l.found),
        (
            "loop.rectified_on_time",
            "按期整改（复查合格）数",
            l.rectified_on_time,
        ),
        (
            "loop.rectified_late",
            "逾期整改（复查合格）数",
            l.rectified_late,
        ),
        (
            "loop.reinspections_failed",
            "复查不合格数",
            l.reinspections_failed,
        ),
        ("loop.extended", "延期数", l.extended),
        ("loop.closed", "销号数", l.closed),
        ("loop.listed", "挂牌督办数", l.listed),
        ("loop.delisted", "摘牌数", l.delisted),
    ] {
        summary.push(vec![text(code), text(label), Cell::Count(count)]);
    }
    for row in &b.writs_by_kind {
        summary.push(vec![
            text(format!("writ.{}", row.code)),
            text(format!("签发{}", row.label)),
            Cell::Count(row.count),
        ]);
    }
    for row in &b.findings_by_level {
        summary.push(vec![
            text(format!("level.{}", row.code)),
            text(row.label.clone()),
            Cell::Count(row.count),
        ]);
    }
    for row in &b.violations_by_kind {
        summary.push(vec![
            text(format!("violation.{}", row.code)),
            text(row.label.clone()),
            Cell::Count(row.count),
        ]);
    }
    vec![
        Table {
            sheet: "汇总",
            section: "summary",
            header: vec!["代码", "指标", "数值"],
            rows: summary,
        },
        groups("按辖区", "by_district", "辖区代码", "辖区", &b.by_district),
        groups("按行业", "by_industry", "行业代码", "行业", &b.by_industry),
        groups(
            "按类型",
            "by_case_type",
            "类型代码",
            "检查类型",
            &b.by_case_type,
        ),
        Table {
            sheet: "趋势",
            section: "trend",
            header: vec![
                "时段",
                "开始日期",
                "结束日期",
                "案件数",
                "隐患数",
                "重大隐患数",
            ],
            rows: b
                .trend
                .iter()
                .map(|r| {
                    vec![
                        text(r.label.clone()),
                        text(r.from.to_string()),
                        text(r.to.to_string()),
                        Cell::Count(r.cases),
                        Cell::Count(r.findings),
                        Cell::Count(r.major_findings),
                    ]
                })
                .collect(),
        },
        enterprises("隐患最多的企业", "top_enterprises", &b.top_enterprises),
        enterprises(
            "重大隐患最多的企业",
            "top_major_enterprises",
            &b.top_major_enterprises,
        ),
        Table {
            sheet: "三违按岗位",
            section: "violations_by_post",
            header: vec!["岗位", "违章指挥", "违章作业", "违反劳动纪律", "合计"],
            rows: b
                .violations_by_post
                .iter()
                .map(|r| {
                    vec![
                        text(r.post.clone()),
                        Cell::Count(r.illegal_command),
                        Cell::Count(r.illegal_operation),
                        Cell::Count(r.labour_discipline),
                        Cell::Count(r.total),
                    ]
                })
                .collect(),
        },
    ]
}

fn groups(
    sheet: &'static str,
    section: &'static str,
    code: &'static str,
    label: &'static str,
    rows: &[GroupRow],
) -> Table {
    Table {
        sheet,
        section,
        header: vec![code, label, "案件数", "隐患数", "重大隐患数"],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    text(r.code.clone()),
                    text(r.label.clone()),
                    Cell::Count(r.cases),
                    Cell::Count(r.findings),
                    Cell::Count(r.major_findings),
                ]
            })
            .collect(),
    }
}

fn enterprises(sheet: &'static str, section: &'static str, rows: &[EnterpriseRow]) -> Table {
    Table {
        sheet,
        section,
        header: vec![
            "排名",
            "统一社会信用代码",
            "企业名称",
            "辖区代码",
            "辖区",
            "行业代码",
            "行业",
            "案件数",
            "隐患数",
            "重大隐患数",
        ],
        rows: rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                vec![
                    Cell::Count(i as i64 + 1),
                    text(r.credit_code.clone()),
                    text(r.name.clone()),
                    text(r.district.clone()),
                    text(r.district_name.unwrap_or(&r.district)),
                    text(r.industry.clone()),
                    text(r.industry_label.clone()),
                    Cell::Count(r.cases),
                    Cell::Count(r.findings),
                    Cell::Count(r.major_findings),
                ]
            })
            .collect(),
    }
}

/// The bulletin as an XLSX workbook: one sheet per table, a bold Chinese header row,
/// counts as numbers.
pub fn xlsx(b: &Bulletin) -> AppResult<Vec<u8>> {
    let failed = |e: rust_xlsxwriter::XlsxError| AppError::Internal(format!("xlsx export: {e}"));
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    for table in tables(b) {
        let sheet = workbook.add_worksheet();
        sheet.set_name(table.sheet).map_err(failed)?;
        for (col, title) in table.header.iter().enumerate() {
            let col = col as u16;
            sheet
                .write_string_with_format(0, col, *title, &bold)
                .map_err(failed)?;
            sheet.set_column_width(col, 14).map_err(failed)?;
        }
        for (i, row) in table.rows.iter().enumerate() {
            let r = i as u32 + 1;
            for (col, cell) in row.iter().enumerate() {
                let col = col as u16;
                match cell {
                    Cell::Text(s) => sheet.write_string(r, col, within_cell(s)),
                    Cell::Count(n) => sheet.write_number(r, col, *n as f64),
                }
                .map_err(failed)?;
            }
        }
        sheet.set_freeze_panes(1, 0).map_err(failed)?;
    }
    workbook.save_to_buffer().map_err(failed)
}

/// Characters a spreadsheet cell holds at most (Excel's bound; longer text is refused).
const XLSX_CELL_CHARS: usize = 32_767;

/// `text`, cut to what a cell holds, its end marked.
fn within_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().nth(XLSX_CELL_CHARS).is_none() {
        return text.into();
    }
    let kept: String = text.chars().take(XLSX_CELL_CHARS - 1).collect();
    format!("{kept}…").into()
}

/// The bulletin as one CSV in UTF-8 with a byte-order mark (so that Excel in China reads
/// it as UTF-8). Each table is a section: its header row (first column `分区`), then its
/// rows (first column the section's code, e.g. `by_district`), then an empty line.
pub fn csv(b: &Bulletin) -> String {
    let mut out = String::from("\u{feff}");
    for table in tables(b) {
        let header = std::iter::once("分区").chain(table.header.iter().copied());
        line(&mut out, header.map(field));
        for row in &table.rows {
            let cells = row.iter().map(|c| match c {
                Cell::Text(s) => field(s),
                Cell::Count(n) => n.to_string(),
            });
            line(
                &mut out,
                std::iter::once(table.section.to_owned()).chain(cells),
            );
        }
        out.push_str("\r\n");
    }
    out
}

fn line(out: &mut String, fields: impl Iterator<Item = String>) {
    let fields: Vec<String> = fields.collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// Characters that make a spreadsheet read a cell as a formula when they come first, and
/// their full-width forms, which Chinese input methods type and some spreadsheets take for
/// the ASCII ones.
const FORMULA_STARTS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// One CSV text field (RFC 4180 quoting). Text that a spreadsheet could run as a formula (a
/// `FORMULA_STARTS` character first, or after leading spaces, which spreadsheets may trim;
/// names and posts are typed by people) is prefixed with `'`.
fn field(value: &str) -> String {
    let value = if value
        .trim_start_matches([' ', '\u{3000}'])
        .starts_with(FORMULA_STARTS)
    {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::{XLSX_CELL_CHARS, field, within_cell};

    #[test]
    fn text_past_a_cell_s_bound_is_cut_and_marked_and_the_sheet_takes_it() {
        let fits = "岗".repeat(XLSX_CELL_CHARS);
        assert_eq!(within_cell(&fits), fits.as_str());
        let cut = within_cell(&"岗".repeat(XLSX_CELL_CHARS + 1)).into_owned();
        assert_eq!(cut.chars().count(), XLSX_CELL_CHARS);
        assert!(cut.ends_with("岗…"));
        let mut workbook = rust_xlsxwriter::Workbook::new();
        let sheet = workbook.add_worksheet();
        assert!(sheet.write_string(0, 0, &fits).is_ok());
        assert!(sheet.write_string(1, 0, &cut).is_ok());
        assert!(
            sheet.write_string(2, 0, format!("{fits}岗")).is_err(),
            "the bound is Excel's"
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("储罐区"), "储罐区");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("他说\"停\""), "\"他说\"\"停\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("-1,2"), "\"'-1,2\"");
        assert_eq!(field("＝HYPERLINK(1)"), "'＝HYPERLINK(1)");
        assert_eq!(field("  @SUM(1)"), "'  @SUM(1)");
        assert_eq!(field("\u{3000}＋1"), "'\u{3000}＋1");
        assert_eq!(field("消防 =通道"), "消防 =通道");
    }
}
