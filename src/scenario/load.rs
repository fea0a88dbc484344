//! From text to a [`ScenarioFile`]: TOML parsing, `--set` overrides, and strict keys.
//!
//! Unknown keys are all collected in one walk of the document rather than failing on the
//! first, and each gets a suggestion: the nearest key valid at that place, looked up in the
//! scenario's own JSON Schema so the list of valid keys can never drift from the types.

use serde_json::Value as Json;
use serde_path_to_error::Segment;

use super::file::{Book, ScenarioFile};
use crate::book::BookSpec;
use crate::error::Problem;

/// A `--set KEY=VALUE` override, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// Dotted key path; numeric parts index arrays (`venues.0.initial_margin`).
    pub key: String,
    /// The value, parsed as a TOML value (a bare word that is not TOML is taken as a string).
    pub value: toml::Value,
}

impl Override {
    /// Parses `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Override, String> {
        let flag = Clipped(text);
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| format!("--set {flag}: expected KEY=VALUE"))?;
        let key = parse_key(text, key)?;
        let raw = raw.trim();
        check_integer_range(raw).map_err(|e| format!("--set {flag}: {e}"))?;
        Ok(Override {
            key,
            value: parse_value(raw),
        })
    }
}

/// Text from the command line as an error message echoes it: in full, or its start once it is
/// longer than a line (a fuzzed `--set` key of 8,000 parts was echoed whole, 16 KB, ahead of
/// the problem).
#[derive(Debug, Clone, Copy)]
pub struct Clipped<'a>(pub &'a str);

impl std::fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 100;
        match self.0.char_indices().nth(SHOWN) {
            None => f.write_str(self.0),
            Some((end, _)) => write!(
                f,
                "{}... ({} characters)",
                &self.0[..end],
                self.0.chars().count()
            ),
        }
    }
}

/// The dotted key path of `--set text` from its key part: list indices may also be written
/// as the problems print them (`venues[1].initial_margin` is `venues.1.initial_margin`), and a
/// name holding a dot or a bracket is quoted (`observed.venue_liquidated."Binance.US"`). The
/// path comes back in one spelling, the one [`key_parts`] splits, so a key given twice in two
/// spellings is still one key.
pub fn parse_key(text: &str, key: &str) -> Result<String, String> {
    let flag = Clipped(text);
    let parts = split_key(key.trim()).ok_or_else(|| {
        format!(
            "--set {flag}: the key must be a dotted path like liquidity.routing or \
             venues.0.depth_1pct (or venues[0].depth_1pct), with a name holding a dot in \
             double quotes (observed.venue_liquidated.\"Binance.US\")"
        )
    })?;
    // Each part is a level of tables the override creates and every later step recurses
    // through: thousands of them overflowed the stack.
    if parts.len() > MAX_KEY_PARTS {
        return Err(format!(
            "--set {flag}: the key has {} parts; a scenario's keys have at most \
             {MAX_KEY_PARTS}",
            parts.len()
        ));
    }
    Ok(join_key(&parts))
}

/// Key parts joined into a dotted key path in the spelling [`key_parts`] splits.
fn join_key<S: AsRef<str>>(parts: &[S]) -> String {
    let parts: Vec<_> = parts.iter().map(|p| key_part(p.as_ref())).collect();
    parts.join(".")
}

/// The parts of a key path in the spelling [`parse_key`] returns (`venues.0."a.b".x` is
/// `venues`, `0`, `a.b`, `x`); text in no spelling is split at every dot, for the checks
/// that then report it.
pub fn key_parts(key: &str) -> Vec<String> {
    split_key(key).unwrap_or_else(|| key.split('.').map(str::to_string).collect())
}

/// Whether the key path `key` is `table` or a key inside it (`venues.0.depth_1pct` is inside
/// `venues.0`, `venues[0]` and `venues`, not inside `venue`), in either spelling: as `--set`
/// takes keys or as problems print paths.
pub fn key_within(key: &str, table: &str) -> bool {
    key_parts(key).starts_with(&key_parts(table))
}

/// A key path's parts: each a bare name up to the next `.` or `[`, or a name in double quotes,
/// followed by any `[N]` list indices; `None` if the text is not such a path.
fn split_key(key: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut rest = key;
    loop {
        let (part, after) = match rest.strip_prefix('"') {
            Some(inner) => inner.split_once('"')?,
            None => rest.split_at(rest.find(['.', '[', ']', '"']).unwrap_or(rest.len())),
        };
        if part.is_empty() {
            return None;
        }
        parts.push(part.to_string());
        rest = after;
        while let Some(inner) = rest.strip_prefix('[') {
            let (index, after) = inner.split_once(']')?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts.push(index.to_string());
            rest = after;
        }
        match rest.strip_prefix('.') {
            Some(after) => rest = after,
            None if rest.is_empty() => return Some(parts),
            None => return None,
        }
    }
}

/// A part of a key path as a path writes it: in double quotes where it holds a character
/// that would otherwise end it.
pub fn key_part(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['.', '[', ']']) {
        format!("\"{part}\"").into()
    } else {
        part.into()
    }
}

/// Parts a `--set` key may have: the deepest key of a scenario has five
/// (`venues.0.margin_tiers.1.above`), so this leaves room without letting a key nest tables
/// deeper than the TOML parser lets a file nest them.
const MAX_KEY_PARTS: usize = 32;

/// `part` of a dotted key as an index into a list, written in its one form: `venues.01` and
/// `venues.+1` are refused where they index a list rather than read as `venues.1`, since a key
/// given twice in two spellings escaped the check that each key is given once (a sweep's
/// `venues.1.x=0.05,0.1` with `venues.01.x=0.2` ran 0.2 in cells named for 0.05 and 0.1).
/// The names of a table (a venue named `007`) are kept as written.
pub fn list_index(part: &str) -> Result<usize, String> {
    match part.parse::<usize>() {
        Ok(i) if i.to_string() == part => Ok(i),
        Ok(i) => Err(format!("write the index `{part}` as {i}")),
        Err(_) => Err(format!("`{part}` is not an index")),
    }
}

/// Refuses a command-line value written as an integer that TOML cannot hold: integers are
/// 64-bit signed, and [`parse_value`] would silently take a larger one as a string.
pub fn check_integer_range(raw: &str) -> Result<(), String> {
    let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw).replace('_', "");
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && raw.replace('_', "").parse::<i64>().is_err()
    {
        return Err(format!(
            "{} is outside the integers a scenario can hold (-2^63 to 2^63 - 1)",
            Clipped(raw)
        ));
    }
    Ok(())
}

/// Parses one TOML value; text that is not a TOML value is taken as a string.
pub fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        // `1\n[x]` parses as `v = 1` and a table `x`: not one value, and not to be cut at the
        // line end.
        .filter(|t| t.len() == 1)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Applies one override to a parsed document, creating missing tables on the way (an inline
/// table merges into the table there, key by key); one that cannot be applied leaves the
/// document as it was (the tables it created on the way would only add problems of their own:
/// `opening` missing every required key, say).
pub fn apply_override(doc: &mut toml::Value, ov: &Override) -> Result<(), Problem> {
    let mut edited = doc.clone();
    set_at(&mut edited, ov)?;
    *doc = edited;
    Ok(())
}

fn set_at(doc: &mut toml::Value, ov: &Override) -> Result<(), Problem> {
    let parts = key_parts(&ov.key);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let problem = |msg: String| Problem {
        path: display_path(&parts),
        message: msg,
    };
    let mut node = doc;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            toml::Value::Table(t) => {
                if last {
                    let slot = t
                        .entry(part.to_string())
                        .or_insert_with(|| toml::Value::Table(default_table(&parts)));
                    merge(slot, ov.value.clone(), &parts);
                    return Ok(());
                }
                // A list the file leaves out has no entries to override; a map (venue
                // names to figures) gets the entry, whatever its name looks like.
                if !t.contains_key(*part) && is_list(&parts[..=i]) {
                    let list = display_path(&parts[..=i]);
                    let next = parts[i + 1];
                    return Err(problem(match list_index(next) {
                        Ok(_) => format!(
                            "`{list}` is not in the scenario, so it has no entry {next}; write \
                             the list in the file to override its entries"
                        ),
                        Err(why) => format!(
                            "{why}: `{list}` is a list (not in the scenario; write it in the \
                             file to override its entries)"
                        ),
                    }));
                }
                t.entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(default_table(&parts[..=i])))
            }
            toml::Value::Array(a) => {
                let len = a.len();
                let idx = list_index(part).map_err(|why| {
                    // Entries are addressed by position, but a user thinks of a venue or
                    // policy by its name: name the key that reaches it.
                    let named = a
                        .iter()
                        .position(|e| e.get("name").and_then(toml::Value::as_str) == Some(part));
                    problem(match named {
                        Some(k) => {
                            let mut key: Vec<String> =
                                parts.iter().map(|p| p.to_string()).collect();
                            key[i] = k.to_string();
                            format!(
                                "{why}: the entry named `{part}` is at index {k}, so write \
                                 `{}`",
                                join_key(&key)
                            )
                        }
                        None => format!(
                            "{why}: it must be an index into the list (0 to {})",
                            len.saturating_sub(1)
                        ),
                    })
                })?;
                let slot = a.get_mut(idx).ok_or_else(|| {
                    problem(format!(
                        "index {idx} is out of range: the list has {len} {}",
                        if len == 1 { "entry" } else { "entries" }
                    ))
                })?;
                if last {
                    merge(slot, ov.value.clone(), &parts);
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(problem(format!(
                    "`{}` is a value, not a table, so `{part}` cannot be set inside it",
                    display_path(&parts[..i])
                )));
            }
        };
    }
    Ok(())
}

/// Puts `value` in `slot`, the value at the dotted key `parts`: a table into a table key by
/// key, recursively, so that `--set 'liquidity={routing=0.3}'` changes `routing` and keeps the
/// file's `impact` and `depth_withdrawal` (replaced whole, the table silently fell back to
/// their defaults). A key the table lacks starts from its [`default_table`], as it does for
/// `--set` of a key inside it. Any other value, a list included, replaces what was there.
fn merge(slot: &mut toml::Value, value: toml::Value, parts: &[&str]) {
    match (slot, value) {
        (toml::Value::Table(old), toml::Value::Table(new)) => {
            for (key, v) in new {
                let inner = [parts, &[key.as_str()]].concat();
                let existing = old
                    .entry(key.clone())
                    .or_insert_with(|| toml::Value::Table(default_table(&inner)));
                merge(existing, v, &inner);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// Whether the schema has a list at the dotted key `parts`.
fn is_list(parts: &[&str]) -> bool {
    schema_walk(schema(), parts).is_ok_and(|node| node.get("items").is_some())
}

/// The table an override creates where the file leaves one out: empty, or the default the
/// table stands for where it has one, so that an override of one of its keys keeps the
/// others. A generated book's leverage mixes are the tables with defaults: `validate` prints
/// `median = 10.0, dispersion = 0.8` for a venue that gives no `long_leverage`, and `--set
/// venues.1.book.long_leverage.median=5` changes the median only.
fn default_table(parts: &[&str]) -> toml::Table {
    let spec = BookSpec::from_book(&Book::default());
    let mix = match parts {
        ["venues", _, "book", "long_leverage"] => spec.long_leverage,
        ["venues", _, "book", "short_leverage"] => spec.short_leverage,
        _ => return toml::Table::new(),
    };
    toml::Table::try_from(mix).expect("a leverage mix is a table of two numbers")
}

/// Marks each problem that involves a key `overrides` set, so that a user reading "q.toml
/// is invalid" learns the value came from the command line, not the file: a problem at or
/// inside the key, or one that names it (`... must be below simulation.steps (10)`, or a
/// sibling's `... must be below initial_margin (0.001)`).
///
/// An override whose key the problem is at or inside (or whose missing table it created) is
/// named before one the message merely mentions, and an unknown key is only ever the doing of
/// the override that set it: its message lists the valid keys, which are other overrides'.
///
/// `text` is the file as written, which tells the tables an override created from those the
/// file has.
pub fn attribute(problems: &mut [Problem], overrides: &[Override], text: &str) {
    let file: Option<toml::Value> = toml::from_str(text).ok();
    let in_file = |path: &str| file.as_ref().is_some_and(|doc| holds(doc, path));
    // Only an override that was applied can have created a table: one refused (an entry of a
    // list the file leaves out) made nothing, and the file's own problems there are its own.
    let applied: Vec<bool> = {
        let mut doc = file.clone();
        overrides
            .iter()
            .map(|ov| doc.as_mut().is_some_and(|d| apply_override(d, ov).is_ok()))
            .collect()
    };
    let keys: Vec<String> = overrides
        .iter()
        .map(|ov| display_path(&key_parts(&ov.key)))
        .collect();
    for p in problems {
        let last = |test: &dyn Fn(&str, bool) -> bool| {
            overrides
                .iter()
                .zip(keys.iter().zip(&applied))
                .rev()
                .find(|(_, (key, applied))| test(key, **applied))
                .map(|(ov, _)| ov)
        };
        let created = || !in_file(&p.path);
        let set_here = last(&|key, applied| {
            key_within(&p.path, key) || (applied && completes(p, key) && created())
        })
        .or_else(|| {
            if p.message.starts_with(UNKNOWN_KEY) {
                None
            } else {
                last(&|key, _| concerns(p, key))
            }
        });
        if let Some(ov) = set_here {
            // A float as Rust writes it: 1e-300, not TOML's three hundred digits.
            let value = match ov.value {
                toml::Value::Float(x) => format!("{x:?}"),
                ref v => v.to_string(),
            };
            let hint = type_hint(ov, p).map(|h| format!("; {h}"));
            p.message.push_str(&format!(
                " (command-line override `{} = {value}`){}",
                ov.key,
                hint.unwrap_or_default()
            ));
        }
    }
}

/// What to write instead of an override's value whose type TOML reads otherwise than the
/// field needs, where the problem ("invalid type: ...") does not say why: a number as people
/// write it but TOML does not (`.5`, `5.`, `NaN`), which [`parse_value`] takes as text, or
/// text that reads as a number or a boolean (a name `2024`), or a name holding a dot that was
/// not quoted, whose parts made tables where a figure belongs.
fn type_hint(ov: &Override, problem: &Problem) -> Option<String> {
    let message = &problem.message;
    if !message.starts_with("invalid type:") {
        return None;
    }
    let (at, parts) = (key_parts(&problem.path).len(), key_parts(&ov.key));
    // An entry of a map of names (`observed.venue_liquidated`).
    let in_map = || {
        let parent: Vec<&str> = parts[..at - 1].iter().map(String::as_str).collect();
        schema_walk(schema(), &parent)
            .is_ok_and(|n| n.get("additionalProperties").is_some_and(Json::is_object))
    };
    if message.starts_with("invalid type: map")
        && !ov.value.is_table()
        && at < parts.len()
        && in_map()
    {
        let mut named = parts[..at - 1].to_vec();
        named.push(parts[at - 1..].join("."));
        return Some(format!(
            "if `{}` is one name, put it in double quotes: --set '{}=...'",
            named[at - 1],
            join_key(&named)
        ));
    }
    // The type expected comes last, in the words of [`in_plain_words`]: `expected a whole
    // number, 0 or more`, `expected a number`, `expected a string`.
    let integer = message.contains("expected a whole number");
    match &ov.value {
        toml::Value::String(raw) => {
            if raw.contains(',') || raw.contains("..") {
                return Some(format!(
                    "a list or range of values is for a sweep, which runs one result per \
                     value: cascade sweep SCENARIO --set {}={}",
                    ov.key,
                    Clipped(raw)
                ));
            }
            let x: f64 = raw.parse().ok()?;
            // Text that TOML reads as a number on its own was quoted on the command line.
            let number = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .is_ok_and(|t| t.get("v").is_some_and(|v| !v.is_str()));
            Some(if number {
                "it is quoted, so it reads as text: leave out the quotes".to_string()
            } else if x.is_infinite() && !raw.to_ascii_lowercase().contains("inf") {
                format!(
                    "{} is beyond the largest number (about 1.8e308)",
                    Clipped(raw)
                )
            } else if !x.is_finite() {
                "TOML writes these nan, inf and -inf".to_string()
            } else if integer && x.fract() == 0.0 {
                format!("this key takes a whole number: write {x:.0}")
            } else {
                format!("TOML numbers have a digit on each side of the point: write {x:?}")
            })
        }
        // Integers and booleans read back as typed; a float may not (1e3 prints 1000.0).
        v @ (toml::Value::Integer(_) | toml::Value::Boolean(_))
            if message.ends_with("expected a string") =>
        {
            Some(format!(
                "to give it as text, quote it: --set '{}=\"{v}\"'",
                ov.key
            ))
        }
        _ if message.ends_with("expected a string") => Some(format!(
            "to give it as text, quote it: --set '{}=\"...\"'",
            ov.key
        )),
        _ => None,
    }
}

/// Whether `problem` is about the key at `key` (a key path as problems print it): at or inside
/// it, naming it by its path (`... must be below simulation.steps (10)`), or a sibling's
/// problem naming it (`partial_fraction: ... only used with liquidation = "partial"`, or
/// `... must be below initial_margin (0.001)`). A top-level key (`name`, `price`) is too common
/// a word to be recognised by name.
pub fn concerns(problem: &Problem, key: &str) -> bool {
    let names = |word: &str| {
        let message = &problem.message;
        message.match_indices(word).any(|(i, _)| {
            let part_of_word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
            !message[..i].ends_with(part_of_word)
                && !message[i + word.len()..].starts_with(part_of_word)
        })
    };
    if key_within(&problem.path, key) {
        return true;
    }
    let Some(split) = key.rfind(['.', '[']) else {
        return false;
    };
    let (parent, last) = (&key[..split], key[split..].trim_start_matches('.'));
    names(key) || (key_within(&problem.path, parent) && names(last))
}

/// Whether `problem` is at a table that holds the key at `key`: the table an override of one
/// of its keys created when the file has no such table, which [`attribute`] checks. A field
/// missing from it (`--set venues.1.opening.notional=1e8` for a venue without cohorts), or a
/// table where a value belongs (`--set observed.venue_liquidated.binance.x=5`).
fn completes(problem: &Problem, key: &str) -> bool {
    key_within(key, &problem.path) && key != problem.path
}

/// Whether `doc` has a value at the key path `path` (as problems print it: `venues[1].opening`).
fn holds(doc: &toml::Value, path: &str) -> bool {
    let mut node = doc;
    for part in path.split(['.', '[']).filter(|p| !p.is_empty()) {
        let next = match part.strip_suffix(']') {
            Some(index) => index.parse().ok().and_then(|i: usize| node.get(i)),
            None => node.get(part),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

/// How serde's message for a missing required key begins.
const MISSING_FIELD: &str = "missing field `";

/// How the message for a key the format does not have begins.
const UNKNOWN_KEY: &str = "unknown key `";

/// Formats dotted key parts as a key path, with the parts that index a list as indices
/// (`venues[1].name`; a map's entry keeps its name: `observed.venue_liquidated.007`).
pub fn display_path<S: AsRef<str>>(parts: &[S]) -> String {
    let schema = schema();
    // Where the schema has no such key, a number is taken as an index.
    let mut node = Some(resolve(schema, schema));
    let mut out = String::new();
    for p in parts.iter().map(AsRef::as_ref) {
        let list = node.is_none_or(|n| n.get("items").is_some());
        node = node.and_then(|n| schema_step(schema, n, p));
        if list && p.parse::<usize>().is_ok() {
            out.push_str(&format!("[{p}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&key_part(p));
        }
    }
    out
}

/// What parsing found: the deserialized file when types allowed it, and every problem.
pub struct Parsed {
    /// The scenario, when it deserialized (it may still have unknown keys), with the values
    /// at `removed` replaced or left out.
    pub file: Option<ScenarioFile>,
    /// Unknown keys, override errors and type errors.
    pub problems: Vec<Problem>,
    /// Key paths whose values had the wrong type and were replaced or left out in `file` (so
    /// that its other values can still be checked); `file` is then not the scenario as written.
    pub removed: Vec<String>,
}

/// Type errors reported from one document at most: past this, the rest waits for a fix.
const MAX_TYPE_ERRORS: usize = 50;

/// Deserialization attempts at most (each works around one type error or missing key).
const MAX_ATTEMPTS: usize = 1_000;

/// A TOML syntax error as the parser words it, but with the line it echoes (and the run of
/// spaces under it to the caret) cut to the part around the error where the line is longer
/// than [`Clipped`] shows: a 5 MB line was echoed whole, 10 MB of stderr.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    const AROUND: usize = 40;
    let whole = e.to_string().trim_end().to_string();
    let Some(at) = e.span().map(|s| s.start.min(text.len())) else {
        return whole;
    };
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[line_start..line_end];
    if line.chars().count() <= 2 * AROUND + 20 {
        return whole;
    }
    let before = &text[line_start..at];
    let from = before
        .char_indices()
        .rev()
        .nth(AROUND - 1)
        .map_or(line_start, |(i, _)| line_start + i);
    let to = text[at..line_end]
        .char_indices()
        .nth(AROUND)
        .map_or(line_end, |(i, _)| at + i);
    format!(
        "{} at line {}, column {}: ...{}... (a line of {} characters)",
        e.message().trim_end(),
        text[..at].matches('\n').count() + 1,
        before.chars().count() + 1,
        &text[from..to],
        line.chars().count()
    )
}

/// Parses scenario text, applies overrides, checks every key against the schema and
/// deserializes.
///
/// Unknown keys are found by walking the parsed document against the scenario's JSON Schema,
/// independently of deserialization, so all of them are reported even when a type error
/// stops serde (which reports only its first).
pub fn parse_scenario(text: &str, overrides: &[Override]) -> Parsed {
    let fail = |problems| Parsed {
        file: None,
        problems,
        removed: Vec::new(),
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return fail(vec![Problem {
                path: String::new(),
                message: format!("not valid TOML: {}", syntax_error(text, &e)),
            }]);
        }
    };
    let mut doc = toml::Value::Table(table);
    // An override that cannot be applied is reported, and the others still are.
    let mut problems: Vec<Problem> = overrides
        .iter()
        .filter_map(|ov| apply_override(&mut doc, ov).err())
        .collect();
    let schema = schema();
    // Lists where a table belongs, given an empty stand-in ...
    let mut tables: Vec<String> = Vec::new();
    check_keys(
        schema,
        schema,
        &mut doc,
        &mut Vec::new(),
        &mut problems,
        &mut tables,
    );
    // Serde stops at its first type error. To report them all, and the range checks of the
    // values that are fine, a value of the wrong type is replaced by a stand-in of the
    // expected type (or left out, for types without an obvious one) and the document
    // deserialized again, until it deserializes or the error is not one to work around (a
    // list element of a type without a stand-in, say).
    let mut removed: Vec<String> = tables.clone();
    // ... and missing tables and values of other types where one belongs (a subset of
    // `removed`).

    // Bounded although every attempt fills or replaces a value, in case a stand-in ever fails
    // to satisfy serde: the problems found so far are then reported.
    for _ in 0..MAX_ATTEMPTS {
        match serde_path_to_error::deserialize::<_, ScenarioFile>(doc.clone()) {
            Ok(file) => {
                return Parsed {
                    file: Some(file),
                    problems,
                    removed,
                };
            }
            Err(e) => {
                let segments: Vec<Segment> = e.path().iter().cloned().collect();
                // Written as every other problem's path, a name holding a dot in quotes.
                let parts: Vec<String> = segments
                    .iter()
                    .map(|segment| match segment {
                        Segment::Seq { index } => index.to_string(),
                        Segment::Map { key } => key.clone(),
                        Segment::Enum { variant } => variant.clone(),
                        Segment::Unknown => "?".to_string(),
                    })
                    .collect();
                let path = display_path(&parts);
                // toml appends "in `table`" context lines; the key path already says where.
                let message = e.into_inner().to_string();
                let message = message.lines().next().unwrap_or_default().to_string();
                let missing_key = message
                    .strip_prefix(MISSING_FIELD)
                    .and_then(|m| m.split('`').next())
                    .map(str::to_string);
                let missing = missing_key.as_ref().map(|key| {
                    if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    }
                });
                // Inside a table that stands in for a missing one, what is missing follows
                // from the table's absence: fill it in silently.
                let inside_stand_in =
                    missing.is_some() && tables.iter().any(|r| key_within(&path, r));
                // A key left out or replaced already: nothing more to learn here. (A required
                // key left out for its type is reported already, not as missing.)
                if !inside_stand_in
                    && (removed.contains(&path)
                        || missing.as_ref().is_some_and(|m| removed.contains(m)))
                {
                    return fail(problems);
                }
                // A choice (`impact`, `model`, ...) misspelt or of the wrong type: said in the
                // schema's words, with the nearest choice, and a valid choice stands in so
                // that the rest of the file is still checked.
                let choice = missing_key
                    .is_none()
                    .then(|| schema_at(schema, &segments))
                    .flatten()
                    .and_then(|node| choices(schema, node))
                    .and_then(|choices| {
                        let found = value_at(&mut doc, &segments)?.clone();
                        Some(choice_problem(&choices, &found))
                    });
                let (message, choice) = match choice {
                    Some((message, stand_in)) => (message, Some(stand_in)),
                    None => (message, None),
                };
                // A missing key gets a stand-in of its schema type too, so that every missing
                // key is reported at once rather than one per attempt.
                let worked_around = match &missing_key {
                    Some(key) => schema_stand_in(schema, &segments, key).is_some_and(|value| {
                        if value.is_table() {
                            tables.push(missing.clone().unwrap_or_default());
                        }
                        insert_at(&mut doc, &segments, key, value)
                    }),
                    None => match choice.or_else(|| stand_in(&message)) {
                        Some(value) => replace_at(&mut doc, &segments, value),
                        // Where a table belongs (`price = 5`, `venues = ["a", "b"]`) an empty
                        // one stands in, filled as a missing table is. Left out, a required
                        // table came back missing, and a list element shifted the next one into
                        // its index; either ended the search and hid the rest of the file.
                        None if message.contains("expected struct ") => {
                            tables.push(path.clone());
                            replace_at(&mut doc, &segments, toml::Value::Table(toml::Table::new()))
                        }
                        None => remove_at(&mut doc, &segments),
                    },
                };
                if inside_stand_in {
                    if !worked_around {
                        return fail(problems);
                    }
                    continue;
                }
                // A missing key is told with the kind of value it takes.
                let message = match missing_key.as_deref().and_then(|key| {
                    let parent = resolve(schema, schema_at(schema, &segments)?);
                    let node = parent.get("properties")?.get(key)?;
                    let at = [segments.clone(), vec![Segment::Map { key: key.into() }]].concat();
                    value_to_write(schema, node, &at)
                }) {
                    Some(words) => format!("{message}: expected {words}"),
                    None => in_plain_words(message, schema, &segments),
                };
                problems.push(Problem {
                    path: path.clone(),
                    message,
                });
                if !worked_around || removed.len() >= MAX_TYPE_ERRORS {
                    return fail(problems);
                }
                removed.push(missing.unwrap_or(path));
            }
        }
    }
    fail(problems)
}

/// Serde's message for a value of the wrong type, with what it expected said as the file's
/// reader would, from the schema of the value at `at`: `expected u64` as `expected a
/// whole number, 0 or more` (`at least 1` where the schema's minimum is 1), `expected struct
/// MarginFloor` as the table to write, `expected a sequence` as a list; and for a float
/// where a whole number belongs, the integer to write instead.
fn in_plain_words(message: String, root: &Json, at: &[Segment]) -> String {
    let Some((head, rust_type)) = message.rsplit_once("expected ") else {
        return message;
    };
    let expected = schema_at(root, at).map(|node| resolve(root, node));
    // The smallest value the schema allows, so that `-5` and `0` are told the same bound
    // (validation says "at least 1" of a 0 that parses).
    let minimum = expected
        .and_then(|node| node.get("minimum"))
        .and_then(Json::as_u64)
        .unwrap_or(0);
    let (words, whole) = match (rust_type, minimum) {
        ("f64" | "f32", _) => ("a number".to_string(), false),
        ("u64" | "usize", 0) => ("a whole number, 0 or more".to_string(), true),
        ("u64" | "usize", m) => (format!("a whole number, at least {m}"), true),
        ("u32", m) => (format!("a whole number from {m} to {}", u32::MAX), true),
        ("a sequence", _) if expected.is_some_and(|node| holds_tables(root, node)) => {
            (list_of_tables(at), false)
        }
        // A single string where a list of them belongs (`cooperating = "eu"`): that string
        // in brackets.
        ("a sequence", _) => match head
            .strip_prefix("invalid type: string ")
            .and_then(|rest| rest.strip_suffix(", "))
        {
            Some(quoted) => (format!("a list in square brackets, [{quoted}]"), false),
            None => ("a list in square brackets, [...]".to_string(), false),
        },
        (name, _) if name.starts_with("struct ") => (
            expected
                .and_then(table_to_write)
                .unwrap_or_else(|| "a table".to_string()),
            false,
        ),
        _ => return message,
    };
    // TOML reads `2000.0` as a float, which no integer field takes.
    let written_as_float = head
        .strip_prefix("invalid type: floating point `")
        .and_then(|rest| rest.split('`').next())
        .and_then(|x| x.parse::<f64>().ok())
        .filter(|x| whole && x.fract() == 0.0 && (0.0..1e15).contains(x));
    match written_as_float {
        Some(x) => format!("{head}expected {words} (write {x:.0}, without the point)"),
        None => format!("{head}expected {words}"),
    }
}

/// The table a schema `node` of an object describes, as an inline table of its required
/// keys (`a table, { initial = ..., maintenance = ... }`), or with its keys named where
/// there are many, or where none is required (then said so: a book's `positions` and
/// `positions_csv` are alternatives, not keys to give together).
fn table_to_write(node: &Json) -> Option<String> {
    let required: Vec<&str> = node
        .get("required")
        .and_then(Json::as_array)
        .map(|keys| keys.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    if required.is_empty() {
        let keys: Vec<&str> = node
            .get("properties")?
            .as_object()?
            .keys()
            .map(String::as_str)
            .collect();
        return (!keys.is_empty()).then(|| {
            format!(
                "a table (its keys, none of them required: {})",
                keys.join(", ")
            )
        });
    }
    Some(match required.len() {
        1..=3 => format!(
            "a table, {{ {} }}",
            required
                .iter()
                .map(|k| format!("{k} = ..."))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => format!("a table (its required keys: {})", required.join(", ")),
    })
}

/// Whether the schema `node` (resolved) is a list of tables (`venues`, `policies`).
fn holds_tables(root: &Json, node: &Json) -> bool {
    node.get("items")
        .is_some_and(|items| resolve(root, items).get("properties").is_some())
}

/// How to write the list of tables at `at`: a `[[venues]]` section per entry. (A list in
/// brackets, `["offshore-a"]`, is a list of strings, which no list of tables takes.)
fn list_of_tables(at: &[Segment]) -> String {
    let header: Vec<&str> = at
        .iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    format!(
        "a list of tables: one `[[{}]]` section per entry, its keys on the lines below the \
         header",
        header.join(".")
    )
}

/// The kind of value the schema `node` of the value at `at` describes, in the file's words
/// (`a number`, `text, in quotes`, `one of ...`, the table or list to write); `None` where the
/// schema says nothing plainer.
fn value_to_write(root: &Json, node: &Json, at: &[Segment]) -> Option<String> {
    if let Some(choices) = choices(root, node) {
        return Some(format!("one of {} (in quotes)", choice_list(&choices)));
    }
    let node = resolve(root, node);
    if holds_tables(root, node) {
        return Some(list_of_tables(at));
    }
    if node.get("properties").is_some() {
        return table_to_write(node);
    }
    let kind = match node.get("type")? {
        Json::Array(types) => types
            .iter()
            .filter_map(Json::as_str)
            .find(|t| *t != "null")?,
        t => t.as_str()?,
    };
    Some(
        match kind {
            "number" => "a number",
            "integer" => "a whole number",
            "string" => "text, in quotes",
            "boolean" => "true or false",
            "array" => "a list in square brackets, [...]",
            _ => return None,
        }
        .to_string(),
    )
}

/// A value of the type a serde type error expected (`..., expected f64`), to stand in for a
/// value of another type; `None` for types without an obvious one.
fn stand_in(message: &str) -> Option<toml::Value> {
    let expected = message.rsplit("expected ").next()?;
    match expected {
        "f64" | "f32" => Some(toml::Value::Float(1.0)),
        "u64" | "u32" | "u16" | "u8" | "usize" | "i64" | "i32" => Some(toml::Value::Integer(1)),
        "a boolean" => Some(toml::Value::Boolean(false)),
        "a string" => Some(toml::Value::String(String::new())),
        _ => None,
    }
}

/// A stand-in for the missing `key` of the table at `path`, of the type the schema gives it
/// (an empty table or list for those: what serde then finds missing inside is not reported);
/// `None` for enumerations and unions.
fn schema_stand_in(root: &Json, path: &[Segment], key: &str) -> Option<toml::Value> {
    let node = schema_at(root, path)?;
    let property = resolve(root, resolve(root, node).get("properties")?.get(key)?);
    match property.get("type")?.as_str()? {
        "number" => Some(toml::Value::Float(1.0)),
        "integer" => Some(toml::Value::Integer(1)),
        "string" if property.get("enum").is_none() => Some(toml::Value::String(String::new())),
        "boolean" => Some(toml::Value::Boolean(false)),
        "array" => Some(toml::Value::Array(Vec::new())),
        "object" => Some(toml::Value::Table(toml::Table::new())),
        _ => None,
    }
}

/// The schema of the value at `path` (unresolved: an `Option` is still its `anyOf`).
fn schema_at<'a>(root: &'a Json, path: &[Segment]) -> Option<&'a Json> {
    let mut node = root;
    for segment in path {
        let resolved = resolve(root, node);
        node = match segment {
            Segment::Map { key } => resolved.get("properties")?.get(key)?,
            Segment::Seq { .. } => resolved.get("items")?,
            _ => return None,
        };
    }
    Some(node)
}

/// The strings a choice allows (a unit-variant enumeration, also inside an `Option`), if the
/// schema `node` is one.
fn choices(root: &Json, node: &Json) -> Option<Vec<String>> {
    let node = resolve(root, node);
    if let Some(options) = node.get("oneOf").and_then(Json::as_array) {
        return options
            .iter()
            .map(|o| o.get("const").and_then(Json::as_str).map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .filter(|choices| !choices.is_empty());
    }
    node.get("anyOf")
        .and_then(Json::as_array)?
        .iter()
        .find_map(|option| choices(root, option))
}

/// What is wrong with `found` where one of `choices` belongs, and the choice that stands in
/// for it: the nearest one, else the first.
fn choice_problem(choices: &[String], found: &toml::Value) -> (String, toml::Value) {
    let list = choice_list(choices);
    let (message, near) = match found {
        toml::Value::String(text) => {
            let near = nearest(text, choices.iter().map(String::as_str));
            let hint = near.map_or(String::new(), |c| format!("; did you mean `{c}`?"));
            (
                format!("unknown choice `{text}`: expected one of {list}{hint}"),
                near,
            )
        }
        other => (
            format!("expected one of {list} (in quotes), found {other}"),
            None,
        ),
    };
    let stand_in = near.unwrap_or(&choices[0]).to_string();
    (message, toml::Value::String(stand_in))
}

/// The choices as a message lists them: `` `gbm`, `student_t`, ... ``.
fn choice_list(choices: &[String]) -> String {
    choices
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one of `options` nearest to `word` (case aside), if any is near: one typing slip away
/// (a letter added, left out, changed, or two swapped), else alike by Jaro-Winkler. Jaro-Winkler
/// alone misses a swap in a short word (`ald` for `adl`, `gmb` for `gbm`): it matches letters
/// only within a window that three letters shrink to nothing.
pub fn nearest<'a>(word: &str, options: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    options
        .map(|o| {
            let o_lower = o.to_lowercase();
            let slip = strsim::osa_distance(&word, &o_lower) <= 1;
            (slip, strsim::jaro_winkler(&word, &o_lower), o)
        })
        .filter(|&(slip, score, _)| slip || score > 0.75)
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, o)| o)
}

/// Inserts `key = value` into the table at `path` in `doc`; returns whether there is one.
fn insert_at(doc: &mut toml::Value, path: &[Segment], key: &str, value: toml::Value) -> bool {
    match value_at(doc, path) {
        Some(toml::Value::Table(t)) => {
            t.insert(key.to_string(), value);
            true
        }
        _ => false,
    }
}

/// The value at `path` in `doc`, if there is one.
fn value_at<'a>(doc: &'a mut toml::Value, path: &[Segment]) -> Option<&'a mut toml::Value> {
    let mut node = doc;
    for segment in path {
        node = match (segment, node) {
            (Segment::Map { key }, toml::Value::Table(t)) => t.get_mut(key)?,
            (Segment::Seq { index }, toml::Value::Array(a)) => a.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Removes the value of a table key at `path` from `doc`; returns whether there was one.
fn remove_at(doc: &mut toml::Value, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = path.split_last() else {
        return false;
    };
    match value_at(doc, parents) {
        Some(toml::Value::Table(t)) => t.remove(key).is_some(),
        _ => false,
    }
}

/// Replaces the value at `path` in `doc`, a table key's value or a list element; returns
/// whether there was one. (A list element can be replaced but not left out: the elements
/// after it would move, and their problems be reported at the wrong index.)
fn replace_at(doc: &mut toml::Value, path: &[Segment], value: toml::Value) -> bool {
    match value_at(doc, path) {
        Some(v) if !path.is_empty() => {
            *v = value;
            true
        }
        _ => false,
    }
}

/// [`schema_json`], made once: parsing walks it for every key an override or a problem names.
fn schema() -> &'static Json {
    static SCHEMA: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(schema_json)
}

/// The JSON Schema of the scenario format, as a JSON value.
///
/// Unsigned integers get the largest value the parser takes: schemars states only their
/// minimum, and an editor would accept `steps = 5_000_000_000`, which a u32 cannot hold (and a
/// u64 field is bounded by TOML's signed 64-bit integers).
pub fn schema_json() -> Json {
    fn bound(node: &mut Json) {
        match node {
            Json::Object(map) => {
                let maximum = match map.get("format").and_then(Json::as_str) {
                    Some("uint32") => Some(u64::from(u32::MAX)),
                    Some("uint64") => Some(i64::MAX as u64),
                    _ => None,
                };
                if let Some(max) = maximum {
                    map.insert("maximum".to_string(), max.into());
                }
                map.values_mut().for_each(bound);
            }
            Json::Array(items) => items.iter_mut().for_each(bound),
            _ => {}
        }
    }
    let mut schema = schemars::schema_for!(ScenarioFile).to_value();
    bound(&mut schema);
    schema
}

/// Reports every key of `value` (at `path`) that `node` of the schema does not allow, and
/// every list where it has a table, which it replaces by an empty table (its path pushed on
/// `replaced`).
fn check_keys(
    root: &Json,
    node: &Json,
    value: &mut toml::Value,
    path: &mut Vec<String>,
    problems: &mut Vec<Problem>,
    replaced: &mut Vec<String>,
) {
    let node = resolve(root, node);
    // Serde reads a list where a table belongs as the table's fields in order: `simulation =
    // [100, 10]` ran 100 paths of 10 steps, silently. An empty table stands in, filled as a
    // missing table is, so that the rest of the file is still checked.
    if value.is_array() && node.get("properties").is_some() {
        let at = display_path(path);
        problems.push(Problem {
            path: at.clone(),
            message: format!(
                "invalid type: a list, expected {}",
                table_to_write(node).unwrap_or_else(|| "a table".to_string())
            ),
        });
        *value = toml::Value::Table(toml::Table::new());
        replaced.push(at);
        return;
    }
    match value {
        toml::Value::Table(t) => {
            let Some(props) = node.get("properties").and_then(Json::as_object) else {
                return;
            };
            for (key, v) in t.iter_mut() {
                path.push(key.clone());
                match props.get(key) {
                    Some(child) => check_keys(root, child, v, path, problems, replaced),
                    None => {
                        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                        problems.push(unknown_key_problem(root, &refs));
                    }
                }
                path.pop();
            }
        }
        toml::Value::Array(items) => {
            if let Some(child) = node.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    check_keys(root, child, v, path, problems, replaced);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// The problem with the dotted key path `key` (as `--set` and `calibrate --key` take it) if
/// the scenario format has no such key: for a command to name the flag that gave it, where
/// loading would report it among the scenario's problems. A key into a list the format has, or
/// past a value that is not a table, is left to the scenario's own checks.
pub fn unknown_key(key: &str) -> Option<Problem> {
    let schema = schema();
    let parts = key_parts(key);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match schema_walk(schema, &parts) {
        Err((depth, table)) if table.get("properties").is_some() => {
            Some(unknown_key_problem(schema, &parts[..=depth]))
        }
        _ => None,
    }
}

/// What the format's field at the dotted `key` holds, where that is not a real number: `an
/// integer`, `a table`, `text`, ... (`None` for a real number, or a key the format does not
/// have, which [`unknown_key`] reports).
pub fn not_real(key: &str) -> Option<&'static str> {
    let parts = key_parts(key);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let node = schema_walk(schema(), &parts).ok()?;
    let types: Vec<&str> = match node.get("type") {
        Some(Json::Array(types)) => types.iter().filter_map(Json::as_str).collect(),
        Some(t) => t.as_str().into_iter().collect(),
        None => Vec::new(),
    };
    if types.contains(&"number") {
        return None;
    }
    Some(match types.iter().find(|&&t| t != "null") {
        Some(&"integer") => "an integer",
        Some(&"string") => "text",
        Some(&"boolean") => "true or false",
        Some(&"array") => "a list",
        Some(&"object") => "a table",
        _ if node.get("properties").is_some() => "a table",
        _ => "one of a set of choices",
    })
}

fn unknown_key_problem(schema: &Json, refs: &[&str]) -> Problem {
    let (key, parent) = refs.split_last().expect("an ignored key has a name");
    let valid = valid_keys(schema, parent);
    let message = match nearest(key, valid.iter().map(String::as_str)) {
        Some(k) => format!("{UNKNOWN_KEY}{key}`; did you mean `{k}`?"),
        None if valid.is_empty() => format!("{UNKNOWN_KEY}{key}`"),
        None => format!("{UNKNOWN_KEY}{key}`; valid keys here: {}", valid.join(", ")),
    };
    Problem {
        path: display_path(refs),
        message,
    }
}

/// The keys the schema allows in the table at `parts`.
fn valid_keys(schema: &Json, parts: &[&str]) -> Vec<String> {
    schema_walk(schema, parts)
        .ok()
        .and_then(|node| node.get("properties"))
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The schema of the value at the dotted key `parts` (numeric parts index lists; any part
/// names an entry of a map, such as `observed.venue_liquidated`), resolved; where the schema
/// has no such key, how many parts it found and the last value they lead to.
fn schema_walk<'a>(schema: &'a Json, parts: &[&str]) -> Result<&'a Json, (usize, &'a Json)> {
    let mut node = resolve(schema, schema);
    for (depth, part) in parts.iter().enumerate() {
        match schema_step(schema, node, part) {
            Some(n) => node = n,
            None => return Err((depth, node)),
        }
    }
    Ok(node)
}

/// The schema of `part` within the value `node` describes, resolved: a list's element if
/// `part` is a number and `node` a list, else a table's key or a map's entry.
fn schema_step<'a>(schema: &'a Json, node: &'a Json, part: &str) -> Option<&'a Json> {
    let next = if part.parse::<usize>().is_ok() && node.get("items").is_some() {
        node.get("items")
    } else {
        node.get("properties")
            .and_then(|p| p.get(part))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
    };
    next.map(|n| resolve(schema, n))
}

/// Follows `$ref` and picks the object or array branch of `anyOf`/`oneOf` (as for `Option`).
fn resolve<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
    if let Some(r) = node.get("$ref").and_then(Json::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        if let Some(def) = root.get("$defs").and_then(|d| d.get(name)) {
            return resolve(root, def);
        }
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(options) = node.get(combinator).and_then(Json::as_array) {
            for option in options {
                let resolved = resolve(root, option);
                if resolved.get("properties").is_some() || resolved.get("items").is_some() {
                    return resolved;
                }
            }
        }
    }
    node
}
