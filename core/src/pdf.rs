//! Enforcement documents rendered to PDF on the device, for a portable printer and the
//! enterprise's copy: A4, the form's title and number, each field, the signatures with
//! their captured images, page numbers; the CJK font the app bundles embedded as a
//! subset. Chinese text is shaped (`rustybuzz`) and broken into lines here, by the rules
//! of Chinese typesetting (no line starts with closing punctuation, none ends with an
//! opening one); `krilla` writes the PDF.

use std::ops::Range;
use std::sync::Arc;

use krilla::Document;
use krilla::geom::{Point, Size, Transform};
use krilla::image::Image;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, GlyphId, KrillaGlyph};

use crate::codes::{SignerRole, WritKind};
use crate::error::{Error, Result};
use crate::model::{Case, Writ};

/// A4 in points.
const PAGE: (f32, f32) = (595.28, 841.89);
/// One millimetre in points.
const MM: f32 = 72.0 / 25.4;
const LEFT: f32 = 25.0 * MM;
const TOP: f32 = 30.0 * MM;
const BOTTOM: f32 = 25.0 * MM;
const BODY: f32 = 12.0;
const LEADING: f32 = 1.6;

/// The font documents are set in: one face of an OpenType/TrueType file (of a collection,
/// by index). The apps bundle Noto Serif SC (思源宋体, SIL Open Font License).
#[derive(Clone)]
pub struct PdfFont {
    font: Font,
    data: Arc<Vec<u8>>,
    index: u32,
}

impl PdfFont {
    /// Loads face `index` of a font file (0 for a single-face file; 2 is 简体中文 in the
    /// Noto CJK collections).
    pub fn load(bytes: Vec<u8>, index: u32) -> Result<PdfFont> {
        let data = Arc::new(bytes);
        let unreadable = || Error::invalid("font", "not a font this device can set text in");
        let font = Font::new(data.clone().into(), index).ok_or_else(unreadable)?;
        rustybuzz::Face::from_slice(&data, index).ok_or_else(unreadable)?;
        Ok(PdfFont { font, data, index })
    }

    /// `text` shaped as Simplified Chinese, advances in em.
    fn shape(&self, text: &str) -> Vec<KrillaGlyph> {
        let face = rustybuzz::Face::from_slice(&self.data, self.index).expect("checked at load");
        let em = face.units_per_em() as f32;
        let mut buffer = rustybuzz::UnicodeBuffer::new();
        buffer.push_str(text);
        buffer.set_direction(rustybuzz::Direction::LeftToRight);
        buffer.set_script(rustybuzz::script::HAN);
        if let Ok(language) = "zh-Hans".parse() {
            buffer.set_language(language);
        }
        let shaped = rustybuzz::shape(&face, &[], buffer);
        let (infos, positions) = (shaped.glyph_infos(), shaped.glyph_positions());
        (0..infos.len())
            .map(|i| {
                let start = infos[i].cluster as usize;
                let end = infos[i + 1..]
                    .iter()
                    .map(|g| g.cluster as usize)
                    .find(|&c| c != start)
                    .unwrap_or(text.len());
                let p = &positions[i];
                KrillaGlyph::new(
                    GlyphId::new(infos[i].glyph_id),
                    p.x_advance as f32 / em,
                    p.x_offset as f32 / em,
                    p.y_offset as f32 / em,
                    p.y_advance as f32 / em,
                    start..end,
                    None,
                )
            })
            .collect()
    }
}

/// Closing punctuation no line starts with, and opening punctuation no line ends with.
const NO_START: &str = "，。、；：？！）」』》〉】〕］”’…—～·%,.;:?!)]";
const NO_END: &str = "（「『《〈【〔［“‘([";

/// Whether a line may break between `a` and `b`.
fn may_break(a: char, b: char) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || "./-_".contains(c);
    !(NO_START.contains(b)
        || NO_END.contains(a)
        || (word(a) && word(b))
        || (a == b && (a == '—' || a == '…')))
}

/// One line of text: its characters and their glyphs (ranges into `text`).
struct Line {
    text: String,
    glyphs: Vec<KrillaGlyph>,
}

/// `text` (one paragraph) broken into lines of at most `width` points at `size`.
fn lines(font: &PdfFont, text: &str, size: f32, width: f32) -> Vec<Line> {
    let glyphs = font.shape(text);
    let char_at = |g: &KrillaGlyph| text[g.text_range.clone()].chars().next().unwrap_or(' ');
    let mut out = Vec::new();
    let mut start = 0;
    while start < glyphs.len() {
        let (mut used, mut end, mut last_break) = (0.0, glyphs.len(), None);
        for i in start..glyphs.len() {
            let advance = glyphs[i].x_advance * size;
            if used + advance > width && i > start {
                end = last_break.map_or(i, |b: usize| b + 1);
                break;
            }
            used += advance;
            if glyphs
                .get(i + 1)
                .is_some_and(|next| may_break(char_at(&glyphs[i]), char_at(next)))
            {
                last_break = Some(i);
            }
        }
        let range: Range<usize> = glyphs[start].text_range.start..glyphs[end - 1].text_range.end;
        let mut own = glyphs[start..end].to_vec();
        for g in &mut own {
            g.text_range = g.text_range.start - range.start..g.text_range.end - range.start;
        }
        out.push(Line {
            text: text[range].to_owned(),
            glyphs: own,
        });
        start = end;
    }
    out
}

/// What is drawn on a page.
enum Mark {
    Text {
        x: f32,
        baseline: f32,
        line: Line,
        size: f32,
        bold: bool,
    },
    Image {
        x: f32,
        top: f32,
        width: f32,
        height: f32,
        image: Image,
    },
}

/// Lays out marks top to bottom, starting new pages as they fill.
struct Layout<'a> {
    font: &'a PdfFont,
    pages: Vec<Vec<Mark>>,
    y: f32,
}

impl Layout<'_> {
    fn width(&self) -> f32 {
        PAGE.0 - 2.0 * LEFT
    }

    /// Makes room for `height` points, on a new page if this one is full.
    fn room(&mut self, height: f32) -> f32 {
        if self.y + height > PAGE.1 - BOTTOM {
            self.pages.push(Vec::new());
            self.y = TOP;
        }
        let top = self.y;
        self.y += height;
        top
    }

    fn mark(&mut self, mark: Mark) {
        self.pages.last_mut().expect("a page").push(mark);
    }

    /// A paragraph: `align` 0 left, 0.5 centred, 1 right.
    fn paragraph(&mut self, text: &str, size: f32, bold: bool, align: f32) {
        let width = self.width();
        for line in lines(self.font, text, size, width) {
            let used: f32 = line.glyphs.iter().map(|g| g.x_advance).sum::<f32>() * size;
            let top = self.room(size * LEADING);
            self.mark(Mark::Text {
                x: LEFT + (width - used) * align,
                baseline: top + size * 1.1,
                line,
                size,
                bold,
            });
        }
    }

    fn image(&mut self, bytes: Vec<u8>, height: f32) -> Result<()> {
        let data: krilla::Data = bytes.into();
        let image = Image::from_png(data.clone(), false)
            .or_else(|_| Image::from_jpeg(data, false))
            .map_err(|_| {
                Error::invalid(
                    "signature",
                    "签名图片无法读取 (the signature image is not a PNG or JPEG)",
                )
            })?;
        // At most `height` high and half the text wide, keeping the image's proportions.
        let (w, h) = image.size();
        let scale = (height / h.max(1) as f32).min(self.width() / 2.0 / w.max(1) as f32);
        let (width, height) = (w as f32 * scale, h as f32 * scale);
        let top = self.room(height + 4.0);
        self.mark(Mark::Image {
            x: LEFT + 2.0 * BODY,
            top,
            width,
            height,
            image,
        });
        Ok(())
    }
}

/// The largest PDF of a document a server takes (a document of a few pages with its
/// font subset and signature images is well under a megabyte).
pub const MAX_PDF_BYTES: usize = 8 * 1024 * 1024;

/// Whether `bytes` are shaped like a whole PDF file, as a server checks an uploaded
/// document before storing it: the header, a cross-reference offset and the end-of-file
/// marker at the end, within [`MAX_PDF_BYTES`]. A structural check, not a full parse:
/// it keeps out a truncated upload and anything that is not a PDF at all.
pub fn check(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() > MAX_PDF_BYTES {
        return Err(format!(
            "a PDF of {} bytes, over {MAX_PDF_BYTES}",
            bytes.len()
        ));
    }
    if !bytes.starts_with(b"%PDF-1.") && !bytes.starts_with(b"%PDF-2.") {
        return Err("not a PDF: no %PDF- header".into());
    }
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    let trimmed = tail
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(&tail[..0], |end| &tail[..=end]);
    if !trimmed.ends_with(b"%%EOF") || !contains(tail, b"startxref") {
        return Err("not a whole PDF: no startxref and %%EOF at its end".into());
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The document `writ` of `case` as PDF bytes. `image` gives the bytes of a blob (the
/// captured signatures); a signature whose image the device does not hold is printed by
/// name only, and an image that cannot be read ends the rendering with its error.
pub fn render(
    case: &Case,
    writ: &Writ,
    font: &PdfFont,
    image: &dyn Fn(&str) -> Result<Option<Vec<u8>>>,
) -> Result<Vec<u8>> {
    let mut layout = Layout {
        font,
        pages: vec![Vec::new()],
        y: TOP,
    };
    layout.paragraph("安全生产行政执法文书", 12.0, false, 0.5);
    layout.paragraph(writ.kind.label(), 22.0, true, 0.5);
    layout.room(BODY * 0.6);
    match (&writ.seal, &writ.numbered) {
        (Some(_), Some(numbered)) => {
            layout.paragraph(&numbered.number, BODY, false, 1.0);
            let was = writ.seal.as_ref().map_or("", |s| s.number.as_str());
            layout.paragraph(&format!("（原临时编号 {was}）"), 9.0, false, 1.0);
        }
        (Some(seal), None) => {
            layout.paragraph(&seal.number, BODY, false, 1.0);
            if seal.provisional {
                layout.paragraph("（临时编号，以监管平台编号为准）", 9.0, false, 1.0);
            }
        }
        (None, _) => layout.paragraph("（草稿，未编号）", BODY, false, 1.0),
    }
    layout.room(BODY * 0.6);
    for (key, label) in crate::writs::fields(writ.kind) {
        layout.paragraph(&format!("{label}："), BODY, true, 0.0);
        let value = writ.fields.get(*key).map_or("", String::as_str);
        for paragraph in value.lines().filter(|p| !p.trim().is_empty()) {
            layout.paragraph(&format!("　　{paragraph}"), BODY, false, 0.0);
        }
        layout.room(BODY * 0.4);
    }
    layout.room(BODY);
    let inspected = if writ.kind == WritKind::ReinspectionOpinion {
        "被复查单位"
    } else {
        "被检查单位"
    };
    for signature in &writ.signatures {
        let who = match signature.role {
            SignerRole::Inspector => format!(
                "执法人员（签名）：{}　证号：{}",
                signature.name, signature.certificate_no
            ),
            SignerRole::Enterprise => format!("{inspected}负责人（签名）：{}", signature.name),
        };
        layout.paragraph(&who, BODY, false, 0.0);
        if let Some(bytes) = image(&signature.image)? {
            layout.image(bytes, 28.0)?;
        }
        layout.paragraph(
            &signature.at.format("%Y年%m月%d日").to_string(),
            BODY,
            false,
            0.0,
        );
    }
    if let Some(refusal) = &writ.refusal {
        layout.paragraph(
            &format!(
                "{inspected}负责人拒绝签字：{}；见证人：{}",
                refusal.reason, refusal.witness
            ),
            BODY,
            false,
            0.0,
        );
    }
    if writ.kind != WritKind::InspectionRecord {
        layout.room(BODY * 0.6);
        layout.paragraph(
            &format!("本文书一式两份：一份由执法部门备案，一份交{inspected}。"),
            10.0,
            false,
            0.0,
        );
    }
    if let Some(seal) = &writ.seal {
        layout.room(BODY);
        layout.paragraph(
            &format!("案件 {} · 内容摘要 SHA-256 {}", case.id, seal.sha256),
            7.0,
            false,
            0.0,
        );
    }
    draw(font, layout.pages)
}

fn draw(font: &PdfFont, pages: Vec<Vec<Mark>>) -> Result<Vec<u8>> {
    let total = pages.len();
    let mut document = Document::new();
    let settings = PageSettings::from_wh(PAGE.0, PAGE.1).expect("A4 is a page size");
    for (n, marks) in pages.into_iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let footer = lines(font, &format!("第 {} 页 共 {total} 页", n + 1), 9.0, PAGE.0)
            .into_iter()
            .next();
        let footer = footer.map(|line| {
            let used: f32 = line.glyphs.iter().map(|g| g.x_advance).sum::<f32>() * 9.0;
            Mark::Text {
                x: (PAGE.0 - used) / 2.0,
                baseline: PAGE.1 - 12.0 * MM,
                line,
                size: 9.0,
                bold: false,
            }
        });
        for mark in marks.into_iter().chain(footer) {
            match mark {
                Mark::Text {
                    x,
                    baseline,
                    line,
                    size,
                    bold,
                } => {
                    surface.set_fill(Some(Fill::default()));
                    // One face, made bold by stroking its outlines too: the title stays text.
                    surface.set_stroke(bold.then(|| Stroke {
                        width: size * 0.035,
                        ..Stroke::default()
                    }));
                    surface.draw_glyphs(
                        Point::from_xy(x, baseline),
                        &line.glyphs,
                        font.font.clone(),
                        &line.text,
                        size,
                        false,
                    );
                }
                Mark::Image {
                    x,
                    top,
                    width,
                    height,
                    image,
                } => {
                    surface.push_transform(&Transform::from_translate(x, top));
                    if let Some(size) = Size::from_wh(width, height) {
                        surface.draw_image(image, size);
                    }
                    surface.pop();
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| {
        Error::invalid(
            "pdf",
            format!("文书无法生成 PDF (cannot write the PDF: {e:?})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_starts_with_closing_or_ends_with_opening_punctuation() {
        assert!(!may_break('字', '，'));
        assert!(!may_break('字', '。'));
        assert!(!may_break('（', '字'));
        assert!(!may_break('《', '安'));
        assert!(!may_break('2', '0'));
        assert!(!may_break('—', '—'));
        assert!(may_break('字', '字'));
        assert!(may_break('，', '字'));
        assert!(may_break('字', '《'));
    }
}
