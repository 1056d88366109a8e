//! The readers of `raw_data/<stream>.jsonl` (or `.jsonl.gz`): every line parsed in parallel, a bad
//! line named by file and line. `requests.jsonl` goes through the fast decoder into the block store.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::records::RequestRecord;
use crate::request_line::decode_fields;
use crate::request_store::{Block, Requests};

enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

/// A stream's file, mapped or read: `None` when the run has no such stream.
fn open_stream(raw_dir: &Path, stream: &str) -> anyhow::Result<Option<(PathBuf, Bytes)>> {
    let path = raw_dir.join(format!("{stream}.jsonl"));
    let gz = raw_dir.join(format!("{stream}.jsonl.gz"));
    match File::open(&path) {
        // Mapped (and prefaulted in one call), not copied: a million-request stream is most of a
        // gigabyte. The runner only ever appends to a stream, and a mapping does not see bytes
        // appended after it is made.
        // SAFETY: raw data is appended, never truncated or rewritten (see the module note).
        Ok(f) => match unsafe { memmap2::MmapOptions::new().populate().map(&f) } {
            Ok(m) => Ok(Some((path, Bytes::Mapped(m)))),
            // Some filesystems cannot be mapped: read them.
            Err(_) => Ok(Some((path.clone(), Bytes::Read(std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)))),
        },
        // Committed runs keep large streams gzipped (`gzip -k -9`); both forms read the same.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && gz.exists() => {
            use std::io::Read;
            let mut b = Vec::new();
            let f = File::open(&gz).map_err(|e| anyhow::anyhow!("{}: {e}", gz.display()))?;
            flate2::read::GzDecoder::new(f).read_to_end(&mut b).map_err(|e| anyhow::anyhow!("{}: {e}", gz.display()))?;
            Ok(Some((gz, Bytes::Read(b))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }
}

/// Chunks of whole lines, a few per thread, to be parsed in parallel, and each one's line count.
fn line_chunks(bytes: &[u8]) -> (Vec<&[u8]>, Vec<usize>) {
    use rayon::prelude::*;
    let target = bytes.len() / (rayon::current_num_threads() * 4) + 1;
    let mut bounds = vec![0];
    while let Some(&start) = bounds.last().filter(|&&b| b < bytes.len()) {
        let from = (start + target).min(bytes.len());
        bounds.push(memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |p| from + p + 1));
    }
    let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
    let lines = chunks.par_iter().map(|c| memchr::memchr_iter(b'\n', c).count() + usize::from(!c.ends_with(b"\n"))).collect();
    (chunks, lines)
}

/// The line at the start of `rest`, its end included.
fn first_line(rest: &[u8]) -> &[u8] {
    &rest[..memchr::memchr(b'\n', rest).map_or(rest.len(), |p| p + 1)]
}

/// `requests.jsonl` as the analysis holds it (see [`Requests`]); a missing file is no requests.
/// A bad line is an error naming the file and line.
pub fn read_requests(raw_dir: &Path) -> anyhow::Result<Requests> {
    use rayon::prelude::*;
    let Some((path, bytes)) = open_stream(raw_dir, "requests")? else { return Ok(Requests::default()) };
    let (chunks, lines) = line_chunks(bytes.as_slice());
    let blocks: Vec<Result<Block, (usize, serde_json::Error)>> = chunks
        .par_iter()
        .zip(&lines)
        .map(|(chunk, &n)| {
            // Token times take at least eight bytes of a line each, as the runner writes them.
            let mut block = Block::with_capacity(n, chunk.len() / 8);
            let (mut at, mut i) = (0, 0);
            while at < chunk.len() {
                let rest = &chunk[at..];
                if let Some((r, tokens, used)) = decode_fields(rest, &mut block.token_ns) {
                    block.push(&r, tokens);
                    (at, i) = (at + used, i + 1);
                    continue;
                }
                let line = first_line(rest);
                if !line.iter().all(u8::is_ascii_whitespace) {
                    let r: RequestRecord = serde_json::from_slice(line).map_err(|e| (i, e))?;
                    block.push_record(&r);
                }
                (at, i) = (at + line.len(), i + 1);
            }
            Ok(block)
        })
        .collect();
    let mut all = Vec::with_capacity(blocks.len());
    for (k, b) in blocks.into_iter().enumerate() {
        match b {
            Ok(b) => all.push(b),
            Err((i, e)) => anyhow::bail!("{}:{}: {e}", path.display(), lines[..k].iter().sum::<usize>() + i + 1),
        }
    }
    Ok(Requests::from_blocks(all))
}

/// Reads every record of a stream, lines parsed in parallel; a missing file is an empty stream.
/// A bad line is an error naming the file and line. (`requests.jsonl`, the one stream that grows
/// to millions of lines, has its own reader: [`read_requests`].)
pub fn read_stream<T: serde::de::DeserializeOwned + Send>(raw_dir: &Path, stream: &str) -> anyhow::Result<Vec<T>> {
    use rayon::prelude::*;
    let Some((path, bytes)) = open_stream(raw_dir, stream)? else { return Ok(vec![]) };
    let (chunks, lines) = line_chunks(bytes.as_slice());
    let parsed: Vec<Result<Vec<T>, (usize, serde_json::Error)>> = chunks
        .par_iter()
        .map(|chunk| {
            let mut out = Vec::new();
            for (i, line) in chunk.split(|&b| b == b'\n').enumerate() {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    out.push(serde_json::from_slice(line).map_err(|e| (i, e))?);
                }
            }
            Ok(out)
        })
        .collect();
    let mut records = Vec::new();
    for (k, chunk) in parsed.into_iter().enumerate() {
        match chunk {
            Ok(mut c) => records.append(&mut c),
            Err((i, e)) => anyhow::bail!("{}:{}: {e}", path.display(), lines[..k].iter().sum::<usize>() + i + 1),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_read_in_order_and_a_bad_line_is_named_wherever_it_falls() {
        let dir = std::env::temp_dir().join(format!("run-format-read-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for i in 0..2000 {
            let mut r = crate::testing::request("lm_rs", 1, 3, &[1, 2]);
            r.iteration = i;
            text.push_str(&serde_json::to_string(&r).unwrap());
            // Blank lines and another valid layout (spaces) read too.
            text.push_str(if i % 100 == 0 { "\n\n" } else { "\n" });
        }
        text.push_str(&serde_json::to_string_pretty(&crate::testing::request("lm_rs", 1, 3, &[1])).unwrap().replace('\n', " "));
        text.push('\n');
        std::fs::write(dir.join("requests.jsonl"), &text).unwrap();
        let rs: Vec<RequestRecord> = read_stream(&dir, "requests").unwrap();
        assert_eq!(rs.len(), 2001);
        assert!(rs[..2000].iter().enumerate().all(|(i, r)| r.iteration == i));
        assert_eq!(rs[2000].token_ns, vec![1_000_000]);
        // The requests reader gives the same records.
        let json = |rs: &[RequestRecord]| rs.iter().map(|r| serde_json::to_string(r).unwrap()).collect::<Vec<_>>();
        assert_eq!(json(&read_requests(&dir).unwrap().to_records()), json(&rs));

        // Windows line ends, and no line end after the last record.
        std::fs::write(dir.join("requests.jsonl"), text.trim_end().replace('\n', "\r\n")).unwrap();
        let crlf: Vec<RequestRecord> = read_stream(&dir, "requests").unwrap();
        assert_eq!(crlf.len(), 2001);
        assert!(crlf[..2000].iter().enumerate().all(|(i, r)| r.iteration == i));
        assert_eq!(json(&read_requests(&dir).unwrap().to_records()), json(&crlf));

        let mut lines: Vec<&str> = text.lines().collect();
        lines[776] = "{\"schema\":1,\"engine\":5}";
        std::fs::write(dir.join("requests.jsonl"), lines.join("\n")).unwrap();
        let err = read_stream::<RequestRecord>(&dir, "requests").unwrap_err().to_string();
        assert!(err.contains("requests.jsonl:777: invalid type"), "{err}");
        let err = read_requests(&dir).unwrap_err().to_string();
        assert!(err.contains("requests.jsonl:777: invalid type"), "{err}");
        assert!(read_stream::<RequestRecord>(&dir, "absent").unwrap().is_empty());
        // Committed runs keep the stream gzipped.
        std::fs::write(dir.join("requests.jsonl"), &text).unwrap();
        let gz = std::process::Command::new("gzip").arg("-f").arg(dir.join("requests.jsonl")).status().unwrap();
        assert!(gz.success());
        assert_eq!(json(&read_requests(&dir).unwrap().to_records()), json(&rs));
        std::fs::remove_file(dir.join("requests.jsonl.gz")).unwrap();
        assert!(read_requests(&dir).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
