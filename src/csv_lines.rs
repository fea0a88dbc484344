//! CSV files whose problems name the file's line: the bad lines of an input (a positions
//! snapshot, a series of historical returns), every one reported up to a cap so that a file
//! is fixed in one pass rather than one line per run, and a result's `paths.csv` or
//! `timeline.csv` read back (by `report` and `merge`), refused at its first bad figure.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::scenario::load::Clipped;

/// Bad lines reported at most: past this, the rest are counted and wait for a fix.
pub const MAX_BAD_LINES: usize = 20;

/// A reader of an input CSV (a positions snapshot, a series of returns) in `bytes`: fields
/// trimmed, and rows of any length, which [`wrong_length`] checks against the header. The
/// reader's own check refused a line of spaces as a row of one field, in words that named a
/// record and a line of its own beside the line the message names.
pub fn input_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(bytes)
}

/// Whether a record of an [`input_reader`] is a line of spaces (trimmed to one empty field):
/// as blank as an empty line, which the reader skips.
pub fn is_blank(record: &csv::StringRecord) -> bool {
    record.len() == 1 && record[0].is_empty()
}

/// What is wrong with a `record` whose fields are not the `headers`' many, if it is.
pub fn wrong_length(record: &csv::StringRecord, headers: &csv::StringRecord) -> Option<String> {
    (record.len() != headers.len()).then(|| {
        format!(
            "{}, but the header has {}",
            crate::units::counted(record.len(), "field", "fields"),
            headers.len()
        )
    })
}

/// Why a row of an input could not be read (the `record` read, if it was), naming the column
/// and quoting its value; without the reader's own record and line numbers, as the message
/// names the line.
pub fn unreadable(
    e: &csv::Error,
    headers: &csv::StringRecord,
    record: Option<&csv::StringRecord>,
) -> String {
    let column = |i: usize| headers.get(i).unwrap_or("?");
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("{} is not UTF-8 text", column(err.field()))
        }
        csv::ErrorKind::Deserialize { err, .. } => {
            let Some(i) = err.field().and_then(|i| usize::try_from(i).ok()) else {
                return err.kind().to_string();
            };
            let value = record.and_then(|r| r.get(i)).unwrap_or_default();
            format!("{} `{}`: {}", column(i), value.escape_debug(), err.kind())
        }
        _ => e.to_string(),
    }
}

/// What is wrong with an input's header that lacks some of the `expected` columns: the ones
/// missing, the ones it has, and the likely cause (a spreadsheet's export separated by `;`,
/// names in capitals), or that the file is empty. `None` when every expected column is there.
pub fn missing_columns(headers: &csv::StringRecord, expected: &[&str]) -> Option<String> {
    /// Columns of the header named at most: a file of thousands stays one line.
    const SHOWN: usize = 8;
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == *c))
        .collect();
    if missing.is_empty() {
        return None;
    }
    if headers.is_empty() {
        return Some(format!(
            "is empty; its first line must be the header, naming {}",
            expected.join(",")
        ));
    }
    let list = |names: &mut dyn Iterator<Item = &str>| -> String {
        names
            .map(|n| format!("`{}`", Clipped(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut found = list(&mut headers.iter().take(SHOWN));
    if headers.len() > SHOWN {
        found += &format!(" and {} more", headers.len() - SHOWN);
    }
    let separator = [';', '\t', '|']
        .into_iter()
        .find(|s| headers.len() == 1 && headers[0].contains(*s));
    let cause = if let Some(s) = separator {
        format!("; its one column holds {s:?}: write the file with commas between the columns")
    } else if missing
        .iter()
        .any(|m| headers.iter().any(|h| h.eq_ignore_ascii_case(m)))
    {
        "; column names are lower case".to_string()
    } else {
        String::new()
    };
    Some(format!(
        "missing column{} {} (the header must name {}; it has {found}{cause})",
        if missing.len() == 1 { "" } else { "s" },
        list(&mut missing.into_iter()),
        expected.join(","),
    ))
}

/// The bad lines of one file, gathered as its records are read.
#[derive(Debug)]
pub struct BadLines<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    count: usize,
    problems: Vec<String>,
}

impl<'a> BadLines<'a> {
    /// None yet, in the file `path` whose content is `bytes`.
    pub fn new(path: &'a Path, bytes: &'a [u8]) -> BadLines<'a> {
        BadLines {
            path,
            bytes,
            count: 0,
            problems: Vec::new(),
        }
    }

    /// Adds the problems `found` of one record: `position` is where the reader placed it, if
    /// it did, and `index` its number among the records (from 0).
    pub fn add(&mut self, position: Option<&csv::Position>, index: usize, found: Vec<String>) {
        self.count += 1;
        if self.count > MAX_BAD_LINES {
            return;
        }
        // Counted for reported lines alone: a scan from the start for every record would make
        // reading a million-line file quadratic.
        let line = position.map_or(index + 2, |p| line_of(self.bytes, p.byte()));
        let path = self.path.display();
        self.problems.extend(
            found
                .into_iter()
                .map(|m| format!("{path} line {line}: {m}")),
        );
    }

    /// Every problem added, then how many bad lines were not listed; empty if none.
    pub fn finish(mut self) -> Vec<String> {
        if self.count > MAX_BAD_LINES {
            self.problems.push(format!(
                "{}: {} more bad lines not listed",
                self.path.display(),
                self.count - MAX_BAD_LINES
            ));
        }
        self.problems
    }
}

/// The line (from 1) of the record the reader places at byte `start`. The reader's own line
/// count is off by one after a Windows line end or a blank line: it places the record at the
/// line end it has not consumed yet. A record never begins with a line end, so skipping those
/// finds its first byte, and counting the line ends before it is right for quoted fields that
/// span lines and for every line end the reader takes: a line feed, a carriage return and line
/// feed (one end), and a lone carriage return (old Mac files).
fn line_of(bytes: &[u8], start: u64) -> usize {
    let start = usize::try_from(start).map_or(bytes.len(), |s| s.min(bytes.len()));
    let first = bytes[start..]
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(bytes.len(), |k| start + k);
    let before = &bytes[..first];
    let lone_returns = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && before.get(i + 1) != Some(&b'\n'))
        .count();
    1 + before.iter().filter(|&&b| b == b'\n').count() + lone_returns
}

/// A CSV file of a result (`paths.csv`, `timeline.csv`) read row by row, whose problems name
/// the file and the line.
pub struct ResultCsv {
    /// The file.
    pub file: PathBuf,
    reader: csv::Reader<fs::File>,
    headers: csv::ByteRecord,
}

impl ResultCsv {
    /// Opens `file`, refusing it if it is empty; `header` says how its header begins.
    pub fn open(file: PathBuf, header: &str) -> Result<ResultCsv> {
        let opened = fs::File::open(&file)
            .map_err(|e| Error::BadInput(format!("{}: {e}", file.display())))?;
        ResultCsv::read(file, opened, header)
    }

    /// [`ResultCsv::open`] of `file` opened as `opened`, for a caller that words a file it
    /// cannot open in its own terms.
    pub fn read(file: PathBuf, opened: fs::File, header: &str) -> Result<ResultCsv> {
        let bad = |msg: String| Error::BadInput(format!("{}: {msg}", file.display()));
        let mut reader = csv::Reader::from_reader(opened);
        let headers = reader
            .byte_headers()
            .map_err(|e| bad(e.to_string()))?
            .clone();
        if headers.is_empty() {
            return Err(bad(format!(
                "is empty; expected a header ({header}) and a row per policy and path or step"
            )));
        }
        Ok(ResultCsv {
            file,
            reader,
            headers,
        })
    }

    /// The header's fields.
    pub fn headers(&self) -> &csv::ByteRecord {
        &self.headers
    }

    /// A problem with the file.
    pub fn bad(&self, msg: String) -> Error {
        Error::BadInput(format!("{}: {msg}", self.file.display()))
    }

    /// A problem with the row `record`, named by its line.
    pub fn bad_row(&self, record: &csv::ByteRecord, msg: String) -> Error {
        let line = record.position().map_or(0, |p| self.line_at(p.byte()));
        self.bad(format!("line {line}: {msg}"))
    }

    /// The index of the column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| self.bad(format!("no column `{name}`")))
    }

    /// Reads the next row into `record`; false at the end.
    pub fn next(&mut self, record: &mut csv::ByteRecord) -> Result<bool> {
        let read = self.reader.read_byte_record(record);
        read.map_err(|e| self.bad(e.to_string()))
    }

    /// Column `c` of `record` as a finite number: the files hold no other, so `NaN` or `inf`
    /// is a file edited or damaged, and drawn or merged it would bend every figure of its
    /// policy.
    pub fn number(&self, record: &csv::ByteRecord, c: usize) -> Result<f64> {
        let field = record.get(c).unwrap_or_default();
        let parsed = std::str::from_utf8(field)
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok());
        parsed.filter(|x| x.is_finite()).ok_or_else(|| {
            let shown = String::from_utf8_lossy(field);
            self.bad_row(record, format!("`{shown}` is not a finite number"))
        })
    }

    /// Column `c` of `record` as a step number: the files write it as a whole number, so a
    /// sign, a fraction, `NaN` or a value past `u32` is a file edited or damaged, which a cast
    /// of [`ResultCsv::number`] would have drawn at some other step.
    pub fn step(&self, record: &csv::ByteRecord, c: usize) -> Result<u32> {
        let field = record.get(c).unwrap_or_default();
        let parsed = std::str::from_utf8(field)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        parsed.ok_or_else(|| {
            let shown = String::from_utf8_lossy(field);
            self.bad_row(
                record,
                format!(
                    "`{shown}` is not a step (a whole number from 0 to {})",
                    u32::MAX
                ),
            )
        })
    }

    /// The file's line where the row the reader began at byte `start` is ([`line_of`]). Only
    /// for a message: it reads the file again, up to 64 KiB past `start` (a row starts within
    /// that of where the reader began unless that many blank lines come first).
    fn line_at(&self, start: u64) -> usize {
        let mut head = Vec::new();
        let _ =
            fs::File::open(&self.file).and_then(|f| f.take(start + 65_536).read_to_end(&mut head));
        line_of(&head, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_missing_columns_says_what_it_has_and_why() {
        let expected = ["side", "notional", "entry_price", "leverage"];
        let header = |text: &str| {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            missing_columns(reader.headers().unwrap(), &expected)
        };
        assert_eq!(header("side,notional,entry_price,leverage,extra"), None);
        assert_eq!(
            header("side;notional;entry_price;leverage").unwrap(),
            "missing columns `side`, `notional`, `entry_price`, `leverage` (the header must \
             name side,notional,entry_price,leverage; it has `side;notional;entry_price;leverage`; \
             its one column holds ';': write the file with commas between the columns)"
        );
        assert_eq!(
            header("Side,notional,Entry_Price,leverage").unwrap(),
            "missing columns `side`, `entry_price` (the header must name \
             side,notional,entry_price,leverage; it has `Side`, `notional`, `Entry_Price`, \
             `leverage`; column names are lower case)"
        );
        let wide: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let message = header(&wide.join(",")).unwrap();
        assert!(message.ends_with("`c7` and 992 more)"), "{message}");
    }

    use super::line_of;

    #[test]
    fn lines_are_counted_for_every_line_end() {
        // The third record begins at the same place whatever ends the lines.
        for (end, blank) in [
            ("\n", ""),
            ("\r\n", ""),
            ("\r", ""),
            ("\n", "\n"),
            ("\r", "\r"),
        ] {
            let text = format!("side,notional{end}long,1{end}{blank}short,2{end}");
            let start = text.find("short").unwrap() as u64;
            let expected = if blank.is_empty() { 3 } else { 4 };
            assert_eq!(line_of(text.as_bytes(), start), expected, "{text:?}");
        }
        // A quoted field spanning lines counts its line ends too.
        let text = "a,b\r\n\"x\r\ny\",1\r\nz,2\r\n";
        assert_eq!(line_of(text.as_bytes(), text.find("z,").unwrap() as u64), 4);
    }
}
