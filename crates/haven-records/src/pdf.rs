//! Printed safeguarding records as PDF: a child's chronology, a governors' report with bar
//! charts, a paper transfer pack ending with a receipt to sign.
//!
//! A [`Doc`] is written top to bottom on A4 pages and breaks pages by itself. It needs no
//! browser and no fonts on the machine: the text is set in Helvetica and Helvetica-Bold, two
//! of the fourteen fonts every PDF reader carries, in the WinAnsi (Windows-1252) encoding.
//! Lines are wrapped with the fonts' real glyph widths, taken from their AFM metrics
//! (`pdf/widths.rs`, written by `pdf/widths.py`).
//!
//! WinAnsi holds ASCII, the Latin-1 letters (é, ë, ñ, ß, ø …) and a few more (€, Œ, Š, Ž,
//! curly quotes, dashes, •, …). Any other character prints as `?`: names in scripts outside
//! Western European Latin (Łódź, Dvořák, Ελένη, Анна, 王) do not print as written, nor do
//! accents typed as separate combining marks. [`unprintable`] counts such characters so that
//! a caller can warn before printing. Tabs and other control characters print as spaces, and
//! `\n` starts a new line.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

mod widths;

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 50.0;
const TEXT_W: f32 = PAGE_W - 2.0 * MARGIN;
const LEFT: f32 = MARGIN;
const RIGHT: f32 = PAGE_W - MARGIN;
const TOP: f32 = PAGE_H - MARGIN;
/// The lowest the body goes; the footer sits below it.
const BOTTOM: f32 = MARGIN + 8.0;
/// How far below its top a line of text has its baseline, as a share of the font size.
const ASCENT: f32 = 0.9;
/// Body text.
const BODY: f32 = 10.0;
/// Table cells and chart labels.
const SMALL: f32 = 9.0;
/// Padding inside a table cell.
const PAD: f32 = 3.0;
const RULE_GREY: f32 = 0.7;
const NOTE_GREY: f32 = 0.4;
const BAR_RGB: [f32; 3] = [0.26, 0.45, 0.68];
const FOOTER_SIZE: f32 = 8.0;

/// How many characters of `text` print as `?` because WinAnsi has no code for them (control
/// characters, which print as spaces, are not counted).
pub fn unprintable(text: &str) -> usize {
    text.chars().filter(|c| win_ansi(*c).is_none()).count()
}

/// An A4 document being written, top to bottom, with automatic page breaks.
#[derive(Debug)]
pub struct Doc {
    title: String,
    footer: Option<String>,
    /// What each page shows (never empty: a document has at least one page).
    pages: Vec<Vec<Op>>,
    /// The top of the space left on the current page.
    y: f32,
}

/// One thing drawn on a page.
#[derive(Debug)]
enum Op {
    Text {
        x: f32,
        y: f32,
        bold: bool,
        size: f32,
        grey: f32,
        text: Vec<u8>,
    },
    /// A horizontal line.
    Line {
        x1: f32,
        x2: f32,
        y: f32,
        width: f32,
        grey: f32,
    },
    Fill {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        rgb: [f32; 3],
    },
}

/// The style of a run of wrapped text.
#[derive(Debug, Clone, Copy)]
struct Style {
    bold: bool,
    size: f32,
    grey: f32,
}

impl Style {
    const fn new(bold: bool, size: f32, grey: f32) -> Style {
        Style { bold, size, grey }
    }
    fn leading(self) -> f32 {
        self.size * 1.3
    }
}

const HEADING: Style = Style::new(true, 15.0, 0.0);
const SUBHEADING: Style = Style::new(true, 11.0, 0.0);
const PARA: Style = Style::new(false, BODY, 0.0);
const LABEL: Style = Style::new(true, BODY, 0.0);
const NOTE: Style = Style::new(false, 8.5, NOTE_GREY);
const CELL: Style = Style::new(false, SMALL, 0.0);
const CELL_HEAD: Style = Style::new(true, SMALL, 0.0);

impl Doc {
    /// A new A4 portrait document; the title is printed in each page's footer and recorded
    /// as the file's title.
    pub fn new(title: &str) -> Doc {
        Doc {
            title: title.to_string(),
            footer: None,
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    /// A note printed in every page's footer, such as "OFFICIAL-SENSITIVE: safeguarding record".
    pub fn footer_note(&mut self, text: &str) {
        self.footer = Some(text.to_string());
    }

    /// A section heading in bold, with space above; it is kept with what follows it.
    pub fn heading(&mut self, text: &str) {
        self.gap(14.0);
        self.titled(text, HEADING, 3.0 * PARA.leading());
        self.y -= 4.0;
    }

    /// A smaller bold heading, kept with what follows it.
    pub fn subheading(&mut self, text: &str) {
        self.gap(8.0);
        self.titled(text, SUBHEADING, 2.0 * PARA.leading());
        self.y -= 2.0;
    }

    /// A paragraph of body text, wrapped to the page; `\n` starts a new line.
    pub fn para(&mut self, text: &str) {
        self.wrapped(LEFT, TEXT_W, PARA, text);
        self.y -= 5.0;
    }

    /// A note in smaller grey text, wrapped to the page.
    pub fn note(&mut self, text: &str) {
        self.wrapped(LEFT, TEXT_W, NOTE, text);
        self.y -= 4.0;
    }

    /// "Label: value", the label in bold and the value wrapped beside it (or below it when
    /// the label is long).
    pub fn field(&mut self, label: &str, value: &str) {
        let mut label = encode(label);
        label.extend_from_slice(b": ");
        let indent = width(&label, LABEL);
        if indent <= TEXT_W * 0.35 {
            let lines = wrap(&encode(value), PARA, TEXT_W - indent);
            self.room(PARA.leading());
            self.text(LEFT, LABEL, label);
            self.lines(LEFT + indent, PARA, lines);
        } else {
            let lines = wrap(&label, LABEL, TEXT_W);
            self.room(2.0 * PARA.leading());
            self.lines(LEFT, LABEL, lines);
            self.wrapped(LEFT + 12.0, TEXT_W - 12.0, PARA, value);
        }
        self.y -= 2.0;
    }

    /// A thin line across the page.
    pub fn rule(&mut self) {
        self.room(9.0);
        let y = self.y - 4.5;
        self.push(line_op(LEFT, RIGHT, y, 0.5, RULE_GREY));
        self.y -= 9.0;
    }

    /// Empty space of this many points (none at the top of a page).
    pub fn space(&mut self, points: f32) {
        if points.is_finite() && points > 0.0 && !self.at_top() {
            self.y = (self.y - points).max(BOTTOM);
        }
    }

    /// Starts a new page (unless the current one is still empty).
    pub fn page_break(&mut self) {
        if !self.at_top() {
            self.new_page();
        }
    }

    /// A table: column widths as fractions of the text width (summing to ≤ 1); every cell wrapped;
    /// a row never split across pages unless it alone is taller than a page; the header row
    /// repeated on each new page; thin rules between rows.
    pub fn table(&mut self, headers: &[&str], widths: &[f32], rows: &[Vec<String>]) {
        let n = if headers.is_empty() {
            rows.iter().map(Vec::len).max().unwrap_or(0)
        } else {
            headers.len()
        };
        if n == 0 {
            return;
        }
        let columns = columns(widths, n);
        let head: Vec<Vec<Vec<u8>>> = (0..n)
            .map(|i| {
                let text = headers.get(i).copied().unwrap_or("");
                wrap(&encode(text), CELL_HEAD, cell_width(&columns, i))
            })
            .collect();
        let head_h = if headers.is_empty() {
            0.0
        } else {
            row_height(&head, CELL_HEAD)
        };
        self.gap(4.0);
        self.room(head_h + row_height(&[], CELL));
        self.table_head(&columns, &head, head_h);
        for row in rows {
            let cells: Vec<Vec<Vec<u8>>> = (0..n)
                .map(|i| {
                    let text = row.get(i).map(String::as_str).unwrap_or("");
                    wrap(&encode(text), CELL, cell_width(&columns, i))
                })
                .collect();
            let total = cells.iter().map(Vec::len).max().unwrap_or(0).max(1);
            // Lines of one row that fit on a page under the header.
            let capacity = fitting(TOP - head_h);
            let mut start = 0;
            while start < total {
                let fresh = start > 0 || self.y >= TOP - head_h - 0.01;
                let fit = fitting(self.y);
                let left = total - start;
                if !fresh && left > fit && (left <= capacity || fit == 0) {
                    self.new_page();
                    self.table_head(&columns, &head, head_h);
                    continue;
                }
                let take = left.min(fit).max(1);
                for (i, cell) in cells.iter().enumerate() {
                    let x = columns.get(i).map_or(LEFT, |c| c.0) + PAD;
                    for (k, line) in cell.iter().enumerate().skip(start).take(take) {
                        let y =
                            self.y - PAD - (k - start) as f32 * CELL.leading() - CELL.size * ASCENT;
                        self.push(text_op(x, y, CELL, line.clone()));
                    }
                }
                self.y -= take as f32 * CELL.leading() + 2.0 * PAD;
                self.hline(0.5, RULE_GREY);
                start += take;
                if start < total {
                    self.new_page();
                    self.table_head(&columns, &head, head_h);
                }
            }
        }
        self.y -= 6.0;
    }

    /// A horizontal bar chart: one bar per item, its label on the left and the number shown at
    /// the end of the bar; `None` is a suppressed count: no bar, the text given in `suppressed`
    /// (e.g. "fewer than 5") instead.
    pub fn bars(&mut self, title: &str, items: &[(String, Option<u64>)], suppressed: &str) {
        let label_w = TEXT_W * 0.35;
        let bar_x = LEFT + label_w + 8.0;
        let shown: Vec<Vec<u8>> = items
            .iter()
            .map(|(_, n)| n.map_or_else(|| encode(suppressed), |n| n.to_string().into_bytes()))
            .collect();
        let number_w = shown.iter().map(|s| width(s, CELL)).fold(0.0, f32::max) + 6.0;
        let bar_max = (RIGHT - bar_x - number_w).max(40.0);
        let most = items
            .iter()
            .filter_map(|(_, n)| *n)
            .max()
            .unwrap_or(0)
            .max(1) as f32;
        const BAR_H: f32 = 10.0;
        let row_h = |lines: usize| (lines as f32 * CELL.leading()).max(BAR_H + 2.0) + 5.0;
        self.gap(8.0);
        self.titled(title, SUBHEADING, row_h(1) + 4.0);
        self.y -= 4.0;
        for ((label, n), number) in items.iter().zip(shown) {
            let mut lines = wrap(&encode(label), CELL, label_w);
            lines.truncate(6);
            let h = row_h(lines.len());
            self.room(h);
            let top = self.y;
            self.lines(LEFT, CELL, lines);
            // The bar is centred on the label's first line, the number on its baseline.
            let baseline = top - SMALL * ASCENT;
            let mid = baseline + SMALL * 0.35;
            match n {
                Some(n) => {
                    let length = if *n == 0 {
                        0.0
                    } else {
                        (bar_max * *n as f32 / most).max(1.0)
                    };
                    if length > 0.0 {
                        self.push(Op::Fill {
                            x: bar_x,
                            y: mid - BAR_H / 2.0,
                            w: length,
                            h: BAR_H,
                            rgb: BAR_RGB,
                        });
                    }
                    self.push(text_op(bar_x + length + 4.0, baseline, CELL, number));
                }
                None => {
                    let style = Style::new(false, SMALL, NOTE_GREY);
                    self.push(text_op(bar_x, baseline, style, number));
                }
            }
            self.y = top - h;
        }
        self.y -= 6.0;
    }

    /// Lines to fill in by hand on a printed form: "Label ______________________".
    pub fn blank(&mut self, label: &str) {
        const ROW: f32 = 26.0;
        let mut lines = wrap(&encode(label), PARA, TEXT_W * 0.6);
        let last = lines.pop().unwrap_or_default();
        self.room(lines.len() as f32 * PARA.leading() + ROW);
        self.lines(LEFT, PARA, lines);
        self.y -= ROW - PARA.leading();
        let start = if last.is_empty() {
            LEFT
        } else {
            LEFT + width(&last, PARA) + 6.0
        };
        let y = self.y - PARA.size * ASCENT - 2.0;
        self.text(LEFT, PARA, last);
        self.push(line_op(start, RIGHT, y, 0.6, 0.0));
        self.y -= PARA.leading();
    }

    /// The finished file: every page gets a footer "`<title> — page N of M`" and, if set, the
    /// footer note.
    pub fn finish(self) -> Vec<u8> {
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let regular = Ref::new(3);
        let bold = Ref::new(4);
        let info = Ref::new(5);
        let count = self.pages.len();
        let page_ids: Vec<Ref> = (0..count).map(|i| Ref::new(6 + 2 * i as i32)).collect();

        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(page_ids.iter().copied())
            .count(count as i32);
        pdf.document_info(info)
            .title(TextStr(&self.title))
            .producer(TextStr("Haven"));
        for (id, name) in [(regular, "Helvetica"), (bold, "Helvetica-Bold")] {
            pdf.type1_font(id)
                .base_font(Name(name.as_bytes()))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }

        let title = encode(&self.title);
        let note = self.footer.as_deref().map(encode);
        for (i, (ops, id)) in self.pages.into_iter().zip(page_ids).enumerate() {
            let contents = Ref::new(id.get() + 1);
            let mut page = pdf.page(id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
                .parent(tree)
                .contents(contents);
            page.resources()
                .fonts()
                .pair(Name(b"F1"), regular)
                .pair(Name(b"F2"), bold);
            page.finish();

            let mut content = Content::new();
            for op in ops
                .iter()
                .chain(&footer(&title, note.as_deref(), i + 1, count))
            {
                draw(&mut content, op);
            }
            let raw = content.finish().into_vec();
            match deflate(&raw) {
                Some(packed) => {
                    pdf.stream(contents, &packed).filter(Filter::FlateDecode);
                }
                None => {
                    pdf.stream(contents, &raw);
                }
            }
        }
        pdf.finish()
    }

    fn at_top(&self) -> bool {
        self.y >= TOP
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Starts a new page unless `height` fits on this one (or this one is empty).
    fn room(&mut self, height: f32) {
        if self.y - height < BOTTOM && !self.at_top() {
            self.new_page();
        }
    }

    /// Space above a block, not at the top of a page.
    fn gap(&mut self, points: f32) {
        if !self.at_top() {
            self.y -= points;
        }
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    /// One line of text whose top is the cursor (the cursor does not move).
    fn text(&mut self, x: f32, style: Style, text: Vec<u8>) {
        if !text.is_empty() {
            self.push(text_op(x, self.y - style.size * ASCENT, style, text));
        }
    }

    /// Lines of text one under the other, breaking pages between them.
    fn lines(&mut self, x: f32, style: Style, lines: Vec<Vec<u8>>) {
        for line in lines {
            self.room(style.leading());
            self.text(x, style, line);
            self.y -= style.leading();
        }
    }

    fn wrapped(&mut self, x: f32, w: f32, style: Style, text: &str) {
        self.lines(x, style, wrap(&encode(text), style, w));
    }

    /// A heading kept on the same page as `after` points of what follows it.
    fn titled(&mut self, text: &str, style: Style, after: f32) {
        let lines = wrap(&encode(text), style, TEXT_W);
        self.room(lines.len() as f32 * style.leading() + after);
        self.lines(LEFT, style, lines);
    }

    /// A line across the text width at the cursor.
    fn hline(&mut self, width: f32, grey: f32) {
        let y = self.y;
        self.push(line_op(LEFT, RIGHT, y, width, grey));
    }

    fn table_head(&mut self, columns: &[(f32, f32)], head: &[Vec<Vec<u8>>], height: f32) {
        if height <= 0.0 {
            self.hline(0.8, 0.0);
            return;
        }
        let right = columns.last().map_or(RIGHT, |c| c.0 + c.1);
        self.push(Op::Fill {
            x: LEFT,
            y: self.y - height,
            w: right - LEFT,
            h: height,
            rgb: [0.9; 3],
        });
        for ((x, _), cell) in columns.iter().zip(head) {
            for (k, line) in cell.iter().enumerate() {
                let y = self.y - PAD - k as f32 * CELL_HEAD.leading() - CELL_HEAD.size * ASCENT;
                self.push(text_op(x + PAD, y, CELL_HEAD, line.clone()));
            }
        }
        self.y -= height;
        self.hline(0.8, 0.0);
    }
}

fn line_op(x1: f32, x2: f32, y: f32, width: f32, grey: f32) -> Op {
    Op::Line {
        x1,
        x2,
        y,
        width,
        grey,
    }
}

fn text_op(x: f32, y: f32, style: Style, text: Vec<u8>) -> Op {
    Op::Text {
        x,
        y,
        bold: style.bold,
        size: style.size,
        grey: style.grey,
        text,
    }
}

/// How many table lines fit in a row starting at `top`.
fn fitting(top: f32) -> usize {
    let lines = ((top - BOTTOM - 2.0 * PAD) / CELL.leading()).floor();
    if lines > 0.0 {
        lines as usize
    } else {
        0
    }
}

fn row_height(cells: &[Vec<Vec<u8>>], style: Style) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(0).max(1);
    lines as f32 * style.leading() + 2.0 * PAD
}

/// Each column's left edge and width. Widths that are missing, negative or not numbers share
/// what the others leave; widths adding up to more than the page are scaled down.
fn columns(fractions: &[f32], n: usize) -> Vec<(f32, f32)> {
    let given: Vec<Option<f32>> = (0..n)
        .map(|i| {
            fractions
                .get(i)
                .copied()
                .filter(|f| f.is_finite() && *f > 0.0)
        })
        .collect();
    let sum: f32 = given.iter().flatten().sum();
    let missing = given.iter().filter(|f| f.is_none()).count() as f32;
    let share = if sum < 1.0 {
        (1.0 - sum) / missing
    } else {
        1.0 / n as f32
    };
    let widths: Vec<f32> = given.iter().map(|f| f.unwrap_or(share)).collect();
    let scale = TEXT_W / widths.iter().sum::<f32>().max(1.0);
    let mut x = LEFT;
    widths
        .into_iter()
        .map(|w| {
            x += w * scale;
            (x - w * scale, w * scale)
        })
        .collect()
}

fn cell_width(columns: &[(f32, f32)], i: usize) -> f32 {
    columns.get(i).map_or(0.0, |c| c.1) - 2.0 * PAD
}

/// The footer of page `n` of `of`: the note (if any) above "<title> — page n of m".
fn footer(title: &[u8], note: Option<&[u8]>, n: usize, of: usize) -> Vec<Op> {
    let style = Style::new(false, FOOTER_SIZE, NOTE_GREY);
    let pages = format!(" \u{2014} page {n} of {of}");
    let pages = encode(&pages);
    let mut line = fit(title, style, TEXT_W - width(&pages, style));
    line.extend_from_slice(&pages);
    let mut ops = vec![
        line_op(LEFT, RIGHT, MARGIN - 4.0, 0.5, RULE_GREY),
        text_op(LEFT, MARGIN - 26.0, style, line),
    ];
    if let Some(note) = note {
        let bold = Style {
            bold: true,
            ..style
        };
        ops.push(text_op(LEFT, MARGIN - 15.0, bold, fit(note, bold, TEXT_W)));
    }
    ops
}

fn draw(content: &mut Content, op: &Op) {
    match op {
        Op::Text {
            x,
            y,
            bold,
            size,
            grey,
            text,
        } => {
            let font = if *bold { Name(b"F2") } else { Name(b"F1") };
            content.set_fill_gray(*grey);
            content
                .begin_text()
                .set_font(font, *size)
                .next_line(*x, *y)
                .show(Str(text))
                .end_text();
        }
        Op::Line {
            x1,
            x2,
            y,
            width,
            grey,
        } => {
            content.set_stroke_gray(*grey).set_line_width(*width);
            content.move_to(*x1, *y).line_to(*x2, *y).stroke();
        }
        Op::Fill {
            x,
            y,
            w,
            h,
            rgb: [r, g, b],
        } => {
            content
                .set_fill_rgb(*r, *g, *b)
                .rect(*x, *y, *w, *h)
                .fill_nonzero();
        }
    }
}

fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).ok()?;
    encoder.finish().ok()
}

/// The WinAnsi code of a character: `None` when it has none; control characters are spaces
/// and `\n` stays a line break.
fn win_ansi(c: char) -> Option<u8> {
    let code = u32::from(c);
    match c {
        '\n' => Some(b'\n'),
        ' '..='~' | '\u{a0}'..='\u{ff}' => u8::try_from(code).ok(),
        c if c.is_control() => Some(b' '),
        _ => (0x80..=0x9F)
            .zip(WIN_ANSI_80.chars())
            .find(|(_, u)| *u == c)
            .map(|(b, _)| b),
    }
}

/// The characters Windows-1252 codes 0x80 to 0x9F stand for (NUL where a code is unused).
const WIN_ANSI_80: &str = "€\0‚ƒ„…†‡ˆ‰Š‹Œ\0Ž\0\0‘’“”•–—˜™š›œ\0žŸ";

/// Text as WinAnsi bytes, one per character.
fn encode(text: &str) -> Vec<u8> {
    text.chars().map(|c| win_ansi(c).unwrap_or(b'?')).collect()
}

/// The width in points of WinAnsi text.
fn width(text: &[u8], style: Style) -> f32 {
    let table = if style.bold {
        &widths::BOLD
    } else {
        &widths::REGULAR
    };
    let units: u32 = text
        .iter()
        .map(|b| {
            b.checked_sub(32)
                .and_then(|i| table.get(usize::from(i)))
                .copied()
                .map_or(0, u32::from)
        })
        .sum();
    units as f32 * style.size / 1000.0
}

/// WinAnsi text broken into lines no wider than `max`: at spaces, at `\n`, and inside words
/// too long for a line. Runs of spaces are one space.
fn wrap(text: &[u8], style: Style, max: f32) -> Vec<Vec<u8>> {
    let space = width(b" ", style);
    let mut lines = Vec::new();
    for paragraph in text.split(|b| *b == b'\n') {
        let mut line: Vec<u8> = Vec::new();
        let mut line_w = 0.0;
        for word in paragraph.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
            let word_w = width(word, style);
            if !line.is_empty() && line_w + space + word_w <= max {
                line.push(b' ');
                line.extend_from_slice(word);
                line_w += space + word_w;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than a line is broken, at least one character to a line.
            line_w = 0.0;
            for &b in word {
                let w = width(&[b], style);
                if !line.is_empty() && line_w + w > max {
                    lines.push(std::mem::take(&mut line));
                    line_w = 0.0;
                }
                line.push(b);
                line_w += w;
            }
        }
        lines.push(line);
    }
    lines
}

/// Text cut to fit `max`, ending with "…" when cut.
fn fit(text: &[u8], style: Style, max: f32) -> Vec<u8> {
    if width(text, style) <= max {
        return text.to_vec();
    }
    let mut room = max - width(&[0x85], style);
    let mut cut: Vec<u8> = text
        .iter()
        .take_while(|b| {
            room -= width(&[**b], style);
            room >= 0.0
        })
        .copied()
        .collect();
    cut.push(0x85);
    cut
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static NEXT_FILE: AtomicUsize = AtomicUsize::new(0);

    /// Runs a poppler-utils tool on the PDF (written to a temp file) and returns what it
    /// prints; `after` comes after the file name.
    pub(crate) fn poppler(tool: &str, args: &[&str], after: &[&str], pdf: &[u8]) -> String {
        let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("haven-pdf-test-{}-{n}.pdf", std::process::id()));
        std::fs::write(&path, pdf).expect("the PDF is written to a temp file");
        let output = Command::new(tool)
            .args(args)
            .arg(&path)
            .args(after)
            .output();
        let _ = std::fs::remove_file(&path);
        let output = match output {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("`{tool}` is missing: these tests read the PDF back with poppler-utils (apt-get install poppler-utils)")
            }
            Err(e) => panic!("`{tool}` could not be run: {e}"),
        };
        assert!(
            output.status.success(),
            "`{tool}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("poppler prints UTF-8")
    }

    /// The text of each page as `pdftotext -layout` reads it, runs of spaces made one.
    pub(crate) fn pages(pdf: &[u8]) -> Vec<String> {
        let text = poppler("pdftotext", &["-layout", "-enc", "UTF-8"], &["-"], pdf);
        let mut pages: Vec<String> = text.split('\x0c').map(squash).collect();
        if pages.last().is_some_and(|p| p.trim().is_empty()) {
            pages.pop();
        }
        pages
    }

    fn squash(text: &str) -> String {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A value from `pdfinfo`, such as "Pages" or "Title".
    fn info(pdf: &[u8], key: &str) -> String {
        let out = poppler("pdfinfo", &["-enc", "UTF-8"], &[], pdf);
        let prefix = format!("{key}:");
        let line = out.lines().find(|l| l.starts_with(&prefix));
        line.map(|l| l.trim_start_matches(&prefix).trim().to_string())
            .unwrap_or_default()
    }

    /// Each word `pdftotext -bbox` finds: its text, xMin, yMin, xMax.
    fn words(pdf: &[u8]) -> Vec<(String, f32, f32, f32)> {
        let html = poppler("pdftotext", &["-bbox", "-enc", "UTF-8"], &["-"], pdf);
        let attr = |line: &str, name: &str| -> f32 {
            let key = format!("{name}=\"");
            line.split(&key)
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(f32::NAN)
        };
        html.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("<word "))
            .map(|l| {
                let text = l
                    .split('>')
                    .nth(1)
                    .and_then(|t| t.split('<').next())
                    .unwrap_or("");
                (
                    text.to_string(),
                    attr(l, "xMin"),
                    attr(l, "yMin"),
                    attr(l, "xMax"),
                )
            })
            .collect()
    }

    #[test]
    fn a_document_starts_as_a_pdf_and_an_empty_one_is_one_page() {
        let pdf = Doc::new("Empty").finish();
        assert!(pdf.starts_with(b"%PDF-"));
        assert_eq!(info(&pdf, "Pages"), "1");
        assert_eq!(pages(&pdf), vec!["Empty — page 1 of 1".to_string()]);
    }

    #[test]
    fn text_comes_back_with_western_european_letters_and_question_marks_for_the_rest() {
        let mut doc = Doc::new("Chronology");
        doc.heading("Chronology for Zoë Brontë");
        doc.subheading("Concerns this term");
        doc.field("Date of birth", "14 March 2014");
        doc.field("Known as", "Zoë Brontë — café “Ÿ” €5 œuvre");
        doc.para("Moved from Łódź in Year 3.\tShe says\nshe likes the café.");
        doc.note("Recorded by the DSL.");
        doc.table(
            &["When", "What"],
            &[0.3, 0.7],
            &[vec!["Monday".into(), "Told her teacher".into()]],
        );
        doc.blank("Signed");
        let pdf = doc.finish();
        let text = pages(&pdf).join("\n");
        for expected in [
            "Chronology for Zoë Brontë",
            "Concerns this term",
            "Date of birth: 14 March 2014",
            "Known as: Zoë Brontë — café “Ÿ” €5 œuvre",
            "Moved from ?ód? in Year 3. She says\nshe likes the café.",
            "Recorded by the DSL.",
            "When What",
            "Monday Told her teacher",
            "Signed",
            "Chronology — page 1 of 1",
        ] {
            assert!(text.contains(expected), "{expected:?} is not in\n{text}");
        }
        assert_eq!(unprintable("Zoë Brontë — café “Ÿ” €5 œuvre\t\n"), 0);
        assert_eq!(unprintable("Łódź"), 2);
        assert_eq!(unprintable("Анна 王"), 5);
    }

    #[test]
    fn the_fonts_are_base_14_helvetica_in_win_ansi_and_pages_are_compressed() {
        let mut doc = Doc::new("Fonts");
        doc.heading("A heading");
        doc.para("A paragraph that should not be readable in the raw file.");
        let pdf = doc.finish();
        let fonts = squash(&poppler("pdffonts", &[], &[], &pdf));
        assert!(
            fonts.contains("Helvetica Type 1 WinAnsi no no no"),
            "{fonts}"
        );
        assert!(
            fonts.contains("Helvetica-Bold Type 1 WinAnsi no no no"),
            "{fonts}"
        );
        assert!(pdf.windows(12).any(|w| w == b"/FlateDecode"));
        assert!(!pdf.windows(11).any(|w| w == b"A paragraph"));
    }

    #[test]
    fn pdfinfo_reports_the_title_the_producer_and_the_page_count() {
        let mut doc = Doc::new("Transfer pack — Zoë Brontë");
        doc.para("One");
        doc.page_break();
        doc.page_break();
        doc.para("Two");
        let pdf = doc.finish();
        assert_eq!(info(&pdf, "Title"), "Transfer pack — Zoë Brontë");
        assert_eq!(info(&pdf, "Producer"), "Haven");
        assert_eq!(info(&pdf, "Pages"), "2");
    }

    #[test]
    fn a_long_paragraph_wraps_within_the_margins() {
        let sentence = "The pupil said that older students had shared a photograph of her in a group chat, and that she had been too worried to tell anyone at home. ";
        let mut doc = Doc::new("Wrapping");
        doc.para(&sentence.repeat(40));
        doc.para(&"unbroken".repeat(40));
        doc.field(
            "A field whose label is rather long indeed",
            &sentence.repeat(3),
        );
        doc.field("Short", &sentence.repeat(3));
        let pdf = doc.finish();
        let words = words(&pdf);
        assert!(
            words.len() > 40 * 28,
            "only {} words read back",
            words.len()
        );
        for (word, x_min, _, x_max) in &words {
            assert!(
                *x_min >= MARGIN - 0.5 && *x_max <= PAGE_W - MARGIN + 0.5,
                "{word:?} runs from {x_min} to {x_max}"
            );
        }
        let mut lines: Vec<i64> = words.iter().map(|w| (w.2 * 10.0) as i64).collect();
        lines.dedup();
        assert!(
            lines.len() > 60,
            "the paragraph is on only {} lines",
            lines.len()
        );
        assert_eq!(info(&pdf, "Pages"), "2");
    }

    #[test]
    fn a_long_table_runs_over_pages_with_its_header_on_each_and_rows_whole() {
        let rows: Vec<Vec<String>> = (1..=60)
            .map(|i| {
                let what = "Spoke to the class teacher about what she had seen. ".repeat(i % 4 + 1);
                vec![
                    format!("Row {i:02}"),
                    format!("Entry {i:02} {what}"),
                    "Ms Okonkwo-Smith".into(),
                ]
            })
            .collect();
        let mut doc = Doc::new("Chronology");
        doc.footer_note("OFFICIAL-SENSITIVE: safeguarding record");
        doc.heading("Chronology");
        doc.table(
            &["Date", "What happened", "Recorded by"],
            &[0.15, 0.6, 0.25],
            &rows,
        );
        let pdf = doc.finish();
        let pages = pages(&pdf);
        let n = pages.len();
        assert!(n >= 3, "60 rows fit on {n} pages");
        assert_eq!(info(&pdf, "Pages"), n.to_string());
        for (i, page) in pages.iter().enumerate() {
            assert!(
                page.contains("Date What happened Recorded by"),
                "page {} has no header:\n{page}",
                i + 1
            );
            assert!(
                page.contains("OFFICIAL-SENSITIVE: safeguarding record"),
                "page {} has no footer note",
                i + 1
            );
            let footer = format!("Chronology — page {} of {n}", i + 1);
            assert!(
                page.contains(&footer),
                "page {} has no {footer:?}:\n{page}",
                i + 1
            );
        }
        // Every row is on exactly one page: its first line and its last line on the same page.
        for i in 1..=60 {
            let first = format!("Row {i:02} Entry {i:02}");
            let on: Vec<usize> = (0..n)
                .filter(|p| pages.get(*p).is_some_and(|t| t.contains(&first)))
                .collect();
            assert_eq!(on.len(), 1, "row {i} starts on pages {on:?}");
        }
        let all = pages.join("\n");
        assert_eq!(all.matches("Ms Okonkwo-Smith").count(), 60);
        let spoke = words(&pdf).iter().filter(|w| w.0 == "Spoke").count();
        assert_eq!(spoke, (1..=60).map(|i| i % 4 + 1).sum::<usize>());
    }

    #[test]
    fn a_row_taller_than_a_page_is_split_and_nothing_is_lost() {
        let long = (1..=2500)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut doc = Doc::new("Tall");
        doc.para("Before the table.");
        doc.table(
            &["Date", "Account"],
            &[0.2, 0.8],
            &[
                vec!["Tuesday".into(), long],
                vec!["Wednesday".into(), "Short".into()],
            ],
        );
        let pdf = doc.finish();
        let pages = pages(&pdf);
        assert!(pages.len() >= 3, "the tall row is on {} pages", pages.len());
        assert!(pages.iter().all(|p| p.contains("Date Account")));
        let words: Vec<String> = words(&pdf).into_iter().map(|w| w.0).collect();
        for i in 1..=2500 {
            assert!(words.contains(&format!("w{i}")), "w{i} is missing");
        }
        assert!(pages.last().is_some_and(|p| p.contains("Wednesday Short")));
    }

    #[test]
    fn suppressed_bars_show_the_words_and_no_number() {
        let mut doc = Doc::new("Governors' report");
        doc.bars(
            "Concerns by category",
            &[
                ("Online bullying".into(), Some(12)),
                ("Sharing nudes".into(), None),
                ("Radicalisation".into(), Some(0)),
                ("Harmful content".into(), Some(7)),
            ],
            "fewer than 5",
        );
        let text = pages(&doc.finish()).join("\n");
        assert!(text.contains("Concerns by category"), "{text}");
        let line = |label: &str| {
            text.lines()
                .find(|l| l.contains(label))
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(line("Online bullying"), "Online bullying 12");
        assert_eq!(line("Sharing nudes"), "Sharing nudes fewer than 5");
        assert_eq!(line("Radicalisation"), "Radicalisation 0");
        assert_eq!(line("Harmful content"), "Harmful content 7");
    }

    #[test]
    fn a_heading_is_not_left_alone_at_the_foot_of_a_page() {
        let mut doc = Doc::new("Orphans");
        while doc.y > BOTTOM + 58.0 {
            doc.para("Filler.");
        }
        doc.heading("Second part");
        doc.para("What the second part says.");
        let pages = pages(&doc.finish());
        assert_eq!(pages.len(), 2);
        let second = pages.get(1).map(String::as_str).unwrap_or_default();
        assert!(
            second.starts_with("Second part\nWhat the second part says."),
            "{second}"
        );
    }

    #[test]
    fn a_long_footer_title_is_cut_to_fit_and_the_page_number_kept() {
        let pdf = Doc::new(&"Chronology of concerns ".repeat(20)).finish();
        let text = pages(&pdf).join("\n");
        assert!(text.contains("… — page 1 of 1"), "{text}");
        for (word, x_min, _, x_max) in words(&pdf) {
            assert!(
                x_min >= MARGIN - 0.5 && x_max <= RIGHT + 0.5,
                "{word:?} runs from {x_min} to {x_max}"
            );
        }
    }

    #[test]
    fn column_widths_are_shared_out_and_never_run_past_the_margin() {
        let right = |columns: &[(f32, f32)]| columns.last().map(|c| c.0 + c.1).unwrap_or_default();
        let given = columns(&[0.25, 0.5], 3);
        assert!((right(&given) - RIGHT).abs() < 0.01, "{given:?}");
        assert!(given.iter().all(|c| c.1 > 100.0));
        let too_wide = columns(&[0.8, 0.8, f32::NAN, -1.0], 4);
        assert!((right(&too_wide) - RIGHT).abs() < 0.01, "{too_wide:?}");
        assert!(too_wide.iter().all(|c| c.1 > 0.0));
        let narrow = columns(&[0.2, 0.2], 2);
        assert!(
            (right(&narrow) - (LEFT + 0.4 * TEXT_W)).abs() < 0.01,
            "{narrow:?}"
        );
    }

    #[test]
    fn characters_map_to_win_ansi_bytes() {
        assert_eq!(
            encode("Aé€’—Ÿ\tŁ\n"),
            vec![b'A', 0xE9, 0x80, 0x92, 0x97, 0x9F, b' ', b'?', b'\n']
        );
        assert_eq!(encode("\u{81}\u{7f}"), b"  ");
    }

    #[test]
    fn wrapped_lines_are_never_wider_than_asked() {
        let text = encode(&format!(
            "{} and then {}",
            "word ".repeat(50),
            "x".repeat(300)
        ));
        let lines = wrap(&text, PARA, 120.0);
        assert!(lines.len() > 10);
        assert!(lines.iter().all(|l| width(l, PARA) <= 120.0));
        let rejoined: usize = lines.iter().flatten().filter(|b| **b == b'x').count();
        assert_eq!(rejoined, 300);
        // Not even a letter fits: one to a line, and no endless loop.
        assert_eq!(
            wrap(b"abc", PARA, 1.0),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
    }
}
