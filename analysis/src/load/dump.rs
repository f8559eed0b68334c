//! JSON-lines dumps: a `DumpHeader` line, then one `DumpLine` per line. Gzip is recognised
//! by its magic bytes, not the file name, so renamed files still load.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use sensor_common::graph::{DUMP_FORMAT, DumpHeader, DumpLine, Edge, Node, READABLE_SCHEMA_VERSIONS, dump_line_from_json};

use super::InputSummary;
use crate::error::LoadError;

pub enum DumpRecord {
    Header(DumpHeader),
    Node(Node),
    Edge(Edge),
}

const MAX_BAD_LINES_LISTED: usize = 5;
/// A header is a few hundred bytes; a file whose first line is longer is not a dump, and
/// reading it whole (a binary file has no newlines) could exhaust memory.
const MAX_HEADER_BYTES: usize = 1 << 20;
/// The longest record line accepted; longer lines are skipped as malformed.
const MAX_LINE_BYTES: usize = 16 << 20;

/// `read_until(b'\n')` that stops after `limit` bytes (the line is then not complete).
fn read_line_bounded(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<usize> {
    reader.take(limit as u64).read_until(b'\n', line)
}

/// Streams `path` into `sink`, one record at a time; `sink` returns false to stop.
/// Damage after the header is recorded in `summary` and reading goes on (bad line) or
/// stops (cut stream); only an unreadable or foreign header is an error.
pub fn read_dump(
    path: &Path,
    summary: &mut InputSummary,
    mut sink: impl FnMut(DumpRecord) -> bool,
) -> Result<DumpHeader, LoadError> {
    let io_error = |source| LoadError::Io {
        path: path.into(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let mut magic = [0u8; 2];
    let magic_len = file.read(&mut magic).map_err(io_error)?;
    let file = File::open(path).map_err(io_error)?;
    let gzip = magic_len == 2 && magic == [0x1f, 0x8b];
    let mut reader: Box<dyn BufRead> = if gzip {
        summary.format = "dump (gzip)";
        Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file)))
    } else {
        summary.format = "dump";
        Box::new(BufReader::with_capacity(1 << 16, file))
    };

    let mut line = Vec::with_capacity(1024);
    let read = read_line_bounded(&mut reader, &mut line, MAX_HEADER_BYTES).map_err(io_error)?;
    if read == 0 {
        return Err(LoadError::Empty { path: path.into() });
    }
    if line.len() >= MAX_HEADER_BYTES && line.last() != Some(&b'\n') {
        return Err(LoadError::NotADump {
            path: path.into(),
            detail: format!("first line is longer than {MAX_HEADER_BYTES} bytes"),
        });
    }
    let header = parse_header(path, &line)?;
    summary.host = header.host.id.clone();
    if !sink(DumpRecord::Header(header.clone())) {
        return Ok(header);
    }

    let mut line_number = 1u64;
    loop {
        line.clear();
        match read_line_bounded(&mut reader, &mut line, MAX_LINE_BYTES) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                stream_error(summary, line_number, &error);
                break;
            }
        }
        line_number += 1;
        let complete = line.last() == Some(&b'\n');
        if line.len() >= MAX_LINE_BYTES && !complete {
            // Not a record: skip to the end of this line and go on.
            bad_line(
                summary,
                line_number,
                format!("longer than {MAX_LINE_BYTES} bytes"),
            );
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match read_line_bounded(&mut reader, &mut rest, MAX_LINE_BYTES) {
                    Ok(0) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                    // The stream broke inside the long line: that is a cut, not one bad line.
                    Err(error) => {
                        stream_error(summary, line_number, &error);
                        return Ok(header);
                    }
                }
            }
            continue;
        }
        let text = trim_line(&line);
        if text.is_empty() {
            continue;
        }
        match dump_line_from_json(header.schema_version, text) {
            Ok(DumpLine::Node(node)) => {
                summary.nodes += 1;
                if !sink(DumpRecord::Node(node)) {
                    break;
                }
            }
            Ok(DumpLine::Edge(edge)) => {
                summary.edges += 1;
                if !sink(DumpRecord::Edge(edge)) {
                    break;
                }
            }
            Err(error) if !complete => {
                summary.truncated = Some(format!(
                    "last line (line {line_number}) is cut after {} bytes ({error}): that one record is lost, \
                     the {} nodes and {} edges before it were loaded; the export was probably interrupted",
                    text.len(),
                    summary.nodes,
                    summary.edges
                ));
                break;
            }
            Err(error) => bad_line(summary, line_number, error.to_string()),
        }
    }
    Ok(header)
}

/// A line that is not a record: counted, and the first few named with what was wrong.
fn bad_line(summary: &mut InputSummary, line_number: u64, what: String) {
    summary.bad_records += 1;
    if summary.first_bad_lines.len() < MAX_BAD_LINES_LISTED {
        summary.first_bad_lines.push(line_number);
        summary
            .first_bad_reasons
            .push(format!("line {line_number}: {what}"));
    }
}

/// The stream itself broke (a cut gzip member, a read error): nothing after it is read.
fn stream_error(summary: &mut InputSummary, line_number: u64, error: &std::io::Error) {
    summary.truncated = Some(format!(
        "stream ends with an error after line {line_number} ({error}); \
         the {} nodes and {} edges before it were loaded, anything after is lost",
        summary.nodes, summary.edges
    ));
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

/// Checks format and version before the full header, so that a future header layout is
/// still reported as "unknown version" rather than "not a dump".
fn parse_header(path: &Path, line: &[u8]) -> Result<DumpHeader, LoadError> {
    let not_a_dump = |detail: String| LoadError::NotADump {
        path: path.into(),
        detail,
    };
    let value: serde_json::Value = serde_json::from_slice(trim_line(line))
        .map_err(|e| not_a_dump(format!("first line is not JSON: {e}")))?;
    let format = value.get("format").and_then(|f| f.as_str());
    if format != Some(DUMP_FORMAT) {
        return Err(not_a_dump(match format {
            Some(other) => format!("format is `{other}`"),
            None => "no `format` field".to_owned(),
        }));
    }
    let version = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| not_a_dump("no numeric `schema_version`".to_owned()))?;
    if !READABLE_SCHEMA_VERSIONS.iter().any(|&v| u64::from(v) == version) {
        return Err(LoadError::UnknownSchemaVersion {
            path: path.into(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    serde_json::from_value(value).map_err(|e| not_a_dump(format!("header: {e}")))
}
