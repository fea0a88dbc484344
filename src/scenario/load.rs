//! From text to a [`ScenarioFile`]: TOML parsing, `--set` overrides, and strict keys.
//!
//! Unknown keys are all collected in one walk of the document rather than failing on the
//! first, and each gets a suggestion: the nearest key valid at that place, looked up in the
//! scenario's own JSON Schema so the list of valid keys can never drift from the types.

use serde_json::Value as Json;

use super::file::ScenarioFile;
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
        let (key, raw) = text
            .split_once('=')
            .ok_or_else(|| format!("--set {text}: expected KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!(
                "--set {text}: the key must be a dotted path like liquidity.routing"
            ));
        }
        Ok(Override {
            key: key.to_string(),
            value: parse_value(raw.trim()),
        })
    }
}

/// Parses one TOML value; text that is not a TOML value is taken as a string.
pub fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Applies one override to a parsed document, creating missing tables on the way.
pub fn apply_override(doc: &mut toml::Value, ov: &Override) -> Result<(), Problem> {
    let parts: Vec<&str> = ov.key.split('.').collect();
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
                    t.insert(part.to_string(), ov.value.clone());
                    return Ok(());
                }
                t.entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let len = a.len();
                let idx: usize = part.parse().map_err(|_| {
                    problem(format!(
                        "`{part}` must be an index into the list (0 to {})",
                        len.saturating_sub(1)
                    ))
                })?;
                let slot = a.get_mut(idx).ok_or_else(|| {
                    problem(format!(
                        "index {idx} is out of range: the list has {len} entries"
                    ))
                })?;
                if last {
                    *slot = ov.value.clone();
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

/// Formats dotted key parts as a key path, with numeric parts as indices.
pub fn display_path(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        if p.parse::<usize>().is_ok() {
            out.push_str(&format!("[{p}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
    }
    out
}

/// What parsing found: the deserialized file when types allowed it, and every problem.
pub struct Parsed {
    /// The scenario, when it deserialized (it may still have unknown keys).
    pub file: Option<ScenarioFile>,
    /// Unknown keys, override errors and the first type error.
    pub problems: Vec<Problem>,
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
    };
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return fail(vec![Problem {
                path: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            }]);
        }
    };
    let mut doc = toml::Value::Table(table);
    let mut problems: Vec<Problem> = overrides
        .iter()
        .filter_map(|ov| apply_override(&mut doc, ov).err())
        .collect();
    if !problems.is_empty() {
        return fail(problems);
    }
    let schema = schema_json();
    unknown_keys(&schema, &schema, &doc, &mut Vec::new(), &mut problems);
    match serde_path_to_error::deserialize::<_, ScenarioFile>(doc) {
        Ok(file) => Parsed {
            file: Some(file),
            problems,
        },
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            problems.push(Problem {
                path,
                // toml appends "in `table`" context lines; the key path already says where.
                message: e
                    .into_inner()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            });
            fail(problems)
        }
    }
}

/// The JSON Schema of the scenario format, as a JSON value.
pub fn schema_json() -> Json {
    schemars::schema_for!(ScenarioFile).to_value()
}

/// Reports every key of `value` (at `path`) that `node` of the schema does not allow.
fn unknown_keys(
    root: &Json,
    node: &Json,
    value: &toml::Value,
    path: &mut Vec<String>,
    problems: &mut Vec<Problem>,
) {
    let node = resolve(root, node);
    match value {
        toml::Value::Table(t) => {
            let Some(props) = node.get("properties").and_then(Json::as_object) else {
                return;
            };
            for (key, v) in t {
                path.push(key.clone());
                match props.get(key) {
                    Some(child) => unknown_keys(root, child, v, path, problems),
                    None => problems.push(unknown_key_problem(root, path)),
                }
                path.pop();
            }
        }
        toml::Value::Array(items) => {
            if let Some(child) = node.get("items") {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    unknown_keys(root, child, v, path, problems);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

fn unknown_key_problem(schema: &Json, parts: &[String]) -> Problem {
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let (key, parent) = refs.split_last().expect("an ignored key has a name");
    let valid = valid_keys(schema, parent);
    let nearest = valid
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let message = match nearest {
        Some((_, k)) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None if valid.is_empty() => format!("unknown key `{key}`"),
        None => format!("unknown key `{key}`; valid keys here: {}", valid.join(", ")),
    };
    Problem {
        path: display_path(&refs),
        message,
    }
}

/// The keys the schema allows in the table at `parts`.
fn valid_keys(schema: &Json, parts: &[&str]) -> Vec<String> {
    let mut node = resolve(schema, schema);
    for part in parts {
        let next = if part.parse::<usize>().is_ok() {
            node.get("items")
        } else {
            node.get("properties").and_then(|p| p.get(*part))
        };
        match next {
            Some(n) => node = resolve(schema, n),
            None => return Vec::new(),
        }
    }
    node.get("properties")
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
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
