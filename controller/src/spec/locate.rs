//! Turns a key path such as `functions.detection.memory_mb` into the line
//! and column where that value is written, so that every error points at
//! the spot in the file.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A 1-based line and column in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The position of a byte offset in `text`.
pub fn position_of(text: &str, offset: usize) -> Position {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    Position {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Finds the span of the value at `path` (or of the deepest table on the way
/// that exists, so a missing key points at the table that lacks it).
pub fn span_of(text: &str, path: &[&str]) -> Option<Range<usize>> {
    locate(text, path, false)
}

/// Like [`span_of`], but the span of the last key itself rather than of its
/// value: where a problem is the name, not the value.
pub fn key_span_of(text: &str, path: &[&str]) -> Option<Range<usize>> {
    locate(text, path, true)
}

fn locate(text: &str, path: &[&str], want_key: bool) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut best = None;
    let mut current: Option<&DeValue> = None;
    let mut table = root.get_ref();
    for (depth, segment) in path.iter().enumerate() {
        let is_last = depth + 1 == path.len();
        // Inside an array of tables, a segment is an index.
        if let Some(DeValue::Array(items)) = current {
            let Some(item) = segment
                .parse::<usize>()
                .ok()
                .and_then(|index| items.get(index))
            else {
                break;
            };
            best = Some(item.span());
            match item.get_ref() {
                DeValue::Table(inner) if !is_last => {
                    table = inner;
                    current = None;
                    continue;
                }
                _ => break,
            }
        }
        let Some((key, value)) = table.get_key_value(*segment) else {
            break;
        };
        match value.get_ref() {
            DeValue::Table(inner) if !is_last => {
                best = Some(key.span());
                table = inner;
                current = None;
            }
            DeValue::Array(_) if !is_last => {
                best = Some(key.span());
                current = Some(value.get_ref());
            }
            _ => {
                best = Some(if is_last && !want_key {
                    value.span()
                } else {
                    key.span()
                });
                if !is_last {
                    break;
                }
            }
        }
    }
    best
}

/// The key path (`functions.detection.timout_seconds`, with array
/// indexes as numbers) of the deepest key or value written at `offset`.
pub fn path_at(text: &str, offset: usize) -> Option<Vec<String>> {
    let root = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    path_in_table(root.get_ref(), offset, &mut path).then_some(path)
}

fn path_in_table(table: &DeTable, offset: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        if key.span().contains(&offset) {
            path.push(key.get_ref().to_string());
            return true;
        }
        if value.span().contains(&offset) || container_holds(value.get_ref(), offset) {
            path.push(key.get_ref().to_string());
            path_in_value(value.get_ref(), offset, path);
            return true;
        }
    }
    false
}

/// Whether a table or array (whose own span may be only its header) holds
/// something written at `offset`.
fn container_holds(value: &DeValue, offset: usize) -> bool {
    match value {
        DeValue::Table(table) => table.iter().any(|(key, value)| {
            key.span().contains(&offset)
                || value.span().contains(&offset)
                || container_holds(value.get_ref(), offset)
        }),
        DeValue::Array(items) => items
            .iter()
            .any(|item| item.span().contains(&offset) || container_holds(item.get_ref(), offset)),
        _ => false,
    }
}

fn path_in_value(value: &DeValue, offset: usize, path: &mut Vec<String>) {
    match value {
        DeValue::Table(table) => {
            path_in_table(table, offset, path);
        }
        DeValue::Array(items) => {
            if let Some((index, item)) = items.iter().enumerate().find(|(_, item)| {
                item.span().contains(&offset) || container_holds(item.get_ref(), offset)
            }) {
                path.push(index.to_string());
                path_in_value(item.get_ref(), offset, path);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_path_of_what_is_written_at_an_offset() {
        let text = "[functions.detection]\ntimout_seconds = 3\n\n[[api.routes]]\nmethod = \"GET\"\n\n[[api.routes]]\nmethd = \"FETCH\"\n[functions.detection.release]\ncanary = { percent = 10, minuts = 1 }\n";
        for (needle, expected) in [
            (
                "timout_seconds",
                vec!["functions", "detection", "timout_seconds"],
            ),
            ("methd", vec!["api", "routes", "1", "methd"]),
            (
                "minuts",
                vec!["functions", "detection", "release", "canary", "minuts"],
            ),
        ] {
            let offset = text.find(needle).unwrap();
            assert_eq!(super::path_at(text, offset).unwrap(), expected, "{needle}");
        }
    }

    use super::*;

    #[test]
    fn finds_nested_values_and_falls_back_to_the_table() {
        let text = "[deployment]\nname = \"x\"\n\n[functions.detection]\nmemory_mb = 5\n";
        let span = span_of(text, &["functions", "detection", "memory_mb"]).unwrap();
        assert_eq!(
            position_of(text, span.start),
            Position {
                line: 5,
                column: 13
            }
        );
        let span = span_of(text, &["functions", "detection", "timeout_seconds"]).unwrap();
        assert_eq!(position_of(text, span.start).line, 4);
    }

    #[test]
    fn finds_keys_when_asked() {
        let text = "[functions.detection.environment]\n\"1BAD\" = \"x\"\n";
        let path = ["functions", "detection", "environment", "1BAD"];
        let key = key_span_of(text, &path).unwrap();
        assert_eq!(
            position_of(text, key.start),
            Position { line: 2, column: 1 }
        );
        let value = span_of(text, &path).unwrap();
        assert_eq!(
            position_of(text, value.start),
            Position {
                line: 2,
                column: 10
            }
        );
    }

    #[test]
    fn finds_values_in_arrays_of_tables() {
        let text = "[[api.routes]]\nmethod = \"GET\"\n\n[[api.routes]]\nmethod = \"FETCH\"\n";
        let span = span_of(text, &["api", "routes", "1", "method"]).unwrap();
        assert_eq!(
            position_of(text, span.start),
            Position {
                line: 5,
                column: 10
            }
        );
    }
}
