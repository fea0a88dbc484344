//! The bad lines of a CSV input (a positions snapshot, a series of historical returns): every
//! one is reported, up to a cap, each named by its line in the file, so that a file is fixed
//! in one pass rather than one line per run.

use std::path::Path;

/// Bad lines reported at most: past this, the rest are counted and wait for a fix.
pub const MAX_BAD_LINES: usize = 20;

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

#[cfg(test)]
mod tests {
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
