//! Where training events come from: a local JSON Lines file, CloudTrail log files in S3
//! (gzipped `{"Records": [...]}` under a prefix) or Panther's data lake.

use anomaly::Event;
use anomaly::event::{EventError, Interner};
use anomaly::store::error_chain;
use anomaly::wire::WireError;
use aws_sdk_s3::Client;
use flate2::read::GzDecoder;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A training source, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `file:PATH`: JSON Lines (one event or `{"record": ...}` per line), or a CloudTrail
    /// file `{"Records": [...]}`, optionally gzipped.
    File(PathBuf),
    /// `s3://bucket/prefix`: CloudTrail log files.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// `panther`: Panther's data lake.
    Panther,
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Source, String> {
        if let Some(p) = s.strip_prefix("file:") {
            if p.is_empty() {
                return Err("file: needs a path".into());
            }
            Ok(Source::File(PathBuf::from(p)))
        } else if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket".into());
            }
            Ok(Source::S3 {
                bucket: bucket.into(),
                prefix: prefix.into(),
            })
        } else if s == "panther" {
            Ok(Source::Panther)
        } else {
            Err(format!(
                "unknown source {s:?}; use file:PATH, s3://bucket/prefix or panther"
            ))
        }
    }
}

/// Bytes of JSON Lines read and parsed together: enough to keep every core busy,
/// little enough to hold.
const CHUNK_BYTES: usize = 1 << 20;

/// Events read from a source, with the count of records that could not be read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Parsed events.
    pub events: Vec<Event>,
    /// Records or lines skipped as unreadable.
    pub skipped: usize,
    /// Files or pages read.
    pub files: usize,
    interner: Interner,
    /// One per reading thread, kept from chunk to chunk: equal strings are shared
    /// among the events a thread reads, without a lock or a second pass.
    thread_interners: Vec<Interner>,
}

impl Loaded {
    fn push_value(&mut self, v: &Json) {
        match Event::from_json_unwrapping(v) {
            Ok(e) => self.events.push(self.interner.intern(e)),
            Err(_) => self.skipped += 1,
        }
    }

    /// Adds the events of JSON Lines, read in parallel straight from the text
    /// ([`Event::from_slice`]); a line that is a whole CloudTrail document
    /// (`{"Records": [...]}`) adds its records.
    fn push_lines(&mut self, lines: &[&[u8]]) {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, lines.len().max(1));
        if self.thread_interners.len() < workers {
            self.thread_interners
                .resize_with(workers, Interner::default);
        }
        let per_worker = lines.len().div_ceil(workers).max(1);
        let parsed: Vec<Vec<Result<Event, WireError>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = lines
                .chunks(per_worker)
                .zip(self.thread_interners.iter_mut())
                .map(|(part, interner)| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|line| Event::from_slice_interned(line, interner))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap_or_default())
                .collect()
        });
        let parsed: Vec<Result<Event, WireError>> = parsed.into_iter().flatten().collect();
        if parsed.len() != lines.len() {
            // A reading thread failed: read this batch here instead.
            for line in lines {
                self.push_line(line);
            }
            return;
        }
        for (line, result) in lines.iter().zip(parsed) {
            match result {
                Ok(event) => self.events.push(event),
                Err(WireError::Event(EventError::NoKnownFields)) => self.push_line(line),
                Err(_) => self.skipped += 1,
            }
        }
    }

    /// Adds one line through a parsed value: a CloudTrail document's records, or
    /// one event.
    fn push_line(&mut self, line: &[u8]) {
        match serde_json::from_slice::<Json>(line) {
            Ok(v) => match v.get("Records").and_then(Json::as_array) {
                Some(records) => records.iter().for_each(|r| self.push_value(r)),
                None => self.push_value(&v),
            },
            Err(_) => self.skipped += 1,
        }
    }

    /// Adds the records of one CloudTrail document or one JSON Lines stream.
    fn push_document(&mut self, bytes: &[u8]) {
        let bytes = maybe_gunzip(bytes);
        let Ok(bytes) = bytes else {
            self.skipped += 1;
            return;
        };
        let trimmed = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|i| &bytes[i..])
            .unwrap_or(&[]);
        // A whole CloudTrail document or array?
        if trimmed.first() == Some(&b'{') || trimmed.first() == Some(&b'[') {
            if let Ok(doc) = serde_json::from_slice::<Json>(trimmed) {
                match doc.get("Records").and_then(Json::as_array) {
                    Some(records) => records.iter().for_each(|r| self.push_value(r)),
                    None => match &doc {
                        Json::Array(items) => items.iter().for_each(|r| self.push_value(r)),
                        // A digest file or other non-event document.
                        Json::Object(_) if doc.get("digestStartTime").is_some() => {}
                        other => self.push_value(other),
                    },
                }
                return;
            }
        }
        for line in BufReader::new(trimmed).lines() {
            let Ok(line) = line else {
                self.skipped += 1;
                continue;
            };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Json>(&line) {
                Ok(v) => self.push_value(&v),
                Err(_) => self.skipped += 1,
            }
        }
    }
}

fn maybe_gunzip(bytes: &[u8]) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(std::borrow::Cow::Owned(out))
    } else {
        Ok(std::borrow::Cow::Borrowed(bytes))
    }
}

/// Reads a local file: JSON Lines are streamed a line at a time (a line may also be a
/// whole CloudTrail document); any other file is read as one document.
pub fn read_file(path: &Path) -> anyhow::Result<Loaded> {
    let open = || {
        std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let mut loaded = Loaded {
        files: 1,
        ..Default::default()
    };
    let mut magic = [0u8; 2];
    let gzipped = open()?.read(&mut magic)? == 2 && magic == [0x1f, 0x8b];
    if !gzipped {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if read_lines(open()?, size, CHUNK_BYTES, &mut loaded)? {
            return Ok(loaded);
        }
        loaded = Loaded {
            files: 1,
            ..Default::default()
        };
    }
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    loaded.push_document(&bytes);
    Ok(loaded)
}

/// Reads JSON Lines from `file` (of `size` bytes) in chunks of `chunk_bytes`, the
/// lines of each parsed in parallel from the chunk itself. `false` when the text is
/// not JSON Lines (its first line is not a JSON value: one document spread over
/// several lines).
fn read_lines(
    mut file: impl Read,
    size: u64,
    chunk_bytes: usize,
    loaded: &mut Loaded,
) -> anyhow::Result<bool> {
    let mut pending: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let before = pending.len();
        pending.resize(before + chunk_bytes, 0);
        let mut filled = before;
        while filled < pending.len() {
            match file.read(&mut pending[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let at_end = filled < pending.len();
        pending.truncate(filled);
        let complete = match memchr::memrchr(b'\n', &pending) {
            _ if at_end => pending.len(),
            Some(newline) => newline + 1,
            // One line longer than a chunk: read on.
            None => continue,
        };
        let text = &pending[..complete];
        let mut start = 0;
        let lines: Vec<&[u8]> = memchr::memchr_iter(b'\n', text)
            .chain(std::iter::once(text.len()))
            .map(|end| {
                let line = &text[start..end];
                start = end + 1;
                line
            })
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .collect();
        if first && let Some(line) = lines.first() {
            if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err() {
                return Ok(false);
            }
            first = false;
            // Room for the whole file's events at once, estimated from the first
            // chunk: no copy of millions of events as the list grows.
            let estimate = size as f64 / complete as f64 * lines.len() as f64 * 1.02;
            loaded.events.reserve(estimate as usize);
        }
        loaded.push_lines(&lines);
        pending.drain(..complete);
        if at_end {
            return Ok(true);
        }
    }
}

/// Reads every object under `s3://bucket/prefix`.
pub async fn read_s3(client: &Client, bucket: &str, prefix: &str) -> anyhow::Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page
            .map_err(|e| anyhow::anyhow!("listing s3://{bucket}/{prefix}: {}", error_chain(&e)))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    for key in keys {
        if key.ends_with('/') || key.contains("CloudTrail-Digest/") {
            continue;
        }
        let out = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("reading s3://{bucket}/{key}: {}", error_chain(&e)))?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading s3://{bucket}/{key}: {e}"))?
            .into_bytes();
        loaded.push_document(&bytes);
        loaded.files += 1;
    }
    tracing::info!(
        files = loaded.files,
        events = loaded.events.len(),
        skipped = loaded.skipped,
        "read CloudTrail logs from S3"
    );
    Ok(loaded)
}

/// Turns Panther rows into events.
pub fn from_rows(rows: &[Json]) -> Loaded {
    let mut loaded = Loaded {
        files: 1,
        ..Default::default()
    };
    rows.iter().for_each(|r| loaded.push_value(r));
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_syntax() {
        assert_eq!(
            "file:/tmp/x.jsonl".parse(),
            Ok(Source::File("/tmp/x.jsonl".into()))
        );
        assert_eq!(
            "s3://b/AWSLogs/".parse(),
            Ok(Source::S3 {
                bucket: "b".into(),
                prefix: "AWSLogs/".into()
            })
        );
        assert_eq!(
            "s3://b".parse(),
            Ok(Source::S3 {
                bucket: "b".into(),
                prefix: "".into()
            })
        );
        assert_eq!("panther".parse(), Ok(Source::Panther));
        assert!("ftp://x".parse::<Source>().is_err());
        assert!("file:".parse::<Source>().is_err());
    }

    #[test]
    fn files_of_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        let pretty = dir.path().join("trail.json");
        let doc = serde_json::json!({"Records": [{"eventName": "A"}, {"eventName": "B"}]});
        std::fs::write(&pretty, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let l = read_file(&pretty).unwrap();
        assert_eq!((l.events.len(), l.skipped), (2, 0));
        let lines = dir.path().join("events.jsonl");
        std::fs::write(&lines, "{\"eventName\": \"A\"}\n{\"Records\": [{\"eventName\": \"B\"}]}\n{oops\n{\"eventName\": \"A\"}").unwrap();
        let l = read_file(&lines).unwrap();
        assert_eq!((l.events.len(), l.skipped), (3, 1));
        // Equal strings are shared between events.
        assert!(l.events[0].event_name != l.events[1].event_name);
        assert!(read_file(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn lines_over_many_chunks_keep_their_order() {
        let total = 3_000;
        let mut text = String::new();
        for i in 0..total {
            match i % 1000 {
                999 => text.push_str("{broken\n"),
                500 => text.push_str("{\"Records\": [{\"eventName\": \"Doc\"}]}\n"),
                // A line longer than a chunk.
                700 => text.push_str(&format!(
                    "{{\"eventName\": \"E{i}\", \"pad\": \"{}\"}}\n",
                    "x".repeat(5000)
                )),
                _ => text.push_str(&format!(
                    "{{\"eventName\": \"E{i}\", \"awsRegion\": \"us-east-1\", \"requestParameters\": {{\"big\": [1, 2]}}}}\n"
                )),
            }
        }
        text.push_str("\n  \n{\"eventName\": \"Last\"}");
        let mut loaded = Loaded::default();
        let size = text.len() as u64;
        assert!(read_lines(text.as_bytes(), size, 4096, &mut loaded).unwrap());
        let broken = (0..total).filter(|i| i % 1000 == 999).count();
        assert_eq!(
            (loaded.events.len(), loaded.skipped),
            (total + 1 - broken, broken)
        );
        let names: Vec<&str> = loaded.events.iter().map(|e| e.event_name.key()).collect();
        assert_eq!(names[0], "E0");
        assert_eq!(names[500], "Doc");
        assert_eq!(names[700], "E700");
        assert_eq!(names[names.len() - 2], format!("E{}", total - 2));
        assert_eq!(names[names.len() - 1], "Last");
        // Equal strings read by one thread are one shared copy.
        let threads = loaded.thread_interners.len();
        let mut copies: Vec<&anomaly::event::Text> = Vec::new();
        for event in &loaded.events {
            if let anomaly::Value::Present(region) = &event.aws_region
                && !copies.iter().any(|copy| copy.shares(region))
            {
                copies.push(region);
            }
        }
        assert!(
            copies.len() <= threads,
            "{} copies, {threads} threads",
            copies.len()
        );
        // A document over several lines is not JSON Lines.
        let mut loaded = Loaded::default();
        assert!(!read_lines(&b"{\n  \"Records\": []\n}\n"[..], 20, 4096, &mut loaded).unwrap());
    }

    #[test]
    fn documents_lines_and_gzip() {
        let mut l = Loaded::default();
        l.push_document(br#"{"Records": [{"eventName": "A"}, {"eventName": "B"}, 5]}"#);
        assert_eq!((l.events.len(), l.skipped), (2, 1));
        let mut l = Loaded::default();
        l.push_document(
            b"{\"eventName\": \"A\"}\n\nnot json\n{\"record\": {\"eventName\": \"B\"}}\n",
        );
        assert_eq!((l.events.len(), l.skipped), (2, 1));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, br#"{"Records": [{"eventName": "A"}]}"#).unwrap();
        let mut l = Loaded::default();
        l.push_document(&gz.finish().unwrap());
        assert_eq!(l.events.len(), 1);
        let mut l = Loaded::default();
        l.push_document(br#"{"digestStartTime": "x", "logFiles": []}"#);
        assert_eq!((l.events.len(), l.skipped), (0, 0));
    }
}
