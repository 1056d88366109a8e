//! A fast path for reading `requests.jsonl`, the one stream that grows to millions of lines.
//!
//! The runner writes each [`RequestRecord`] with `serde_json::to_writer`: fields in declaration
//! order, no whitespace, optional fields left out when empty. [`decode`] reads exactly that layout
//! byte by byte, several times faster than serde's generic path, and gives up (returns `None`) at
//! the first byte it does not expect: another field order, whitespace, an escaped string, a number
//! in another form. The caller then parses the line with serde_json, so any valid record still
//! reads, and an invalid one still gets serde's error message.

use std::ops::Range;

use crate::records::{LoadLevel, RequestRecord};
use crate::request_store::Request;

/// How many of the eight bytes of `t` (a little-endian word of text XOR b'0' in every byte: a
/// digit is then its value) are digits before the first that is not. A byte is a digit when it is
/// below 10: adding 0x76 sets its top bit otherwise. A byte whose addition carries into the next
/// has its own top bit set already, so only bytes after the first non-digit can be disturbed.
fn leading_digits(t: u64) -> usize {
    let not_digit = (t.wrapping_add(0x7676_7676_7676_7676) | t) & 0x8080_8080_8080_8080;
    (not_digit.trailing_zeros() / 8) as usize
}

/// Eight digit values, the first in the lowest byte, as the number they spell: pairs, then
/// fours, then the eight, each by one multiplication (the method of simdjson's number parser).
fn eight_digits(t: u64) -> u64 {
    let t = (t & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(10 * 256 + 1) >> 8;
    let t = (t & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 * 65_536 + 1) >> 16;
    (t & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 * (1 << 32) + 1) >> 32
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        let end = self.i + s.len();
        (self.b.get(self.i..end)? == s).then(|| self.i = end)
    }

    /// Like [`Cursor::lit`], but a mismatch leaves the cursor where it was.
    fn maybe(&mut self, s: &[u8]) -> bool {
        self.lit(s).is_some()
    }

    /// A JSON integer as serde writes an unsigned one: digits, no leading zero.
    fn u128(&mut self) -> Option<u128> {
        let digits = &self.b[self.i..];
        let len = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        let v = digits[..len].iter().try_fold(0u128, |v, &d| v.checked_mul(10)?.checked_add(u128::from(d - b'0')))?;
        self.i += len;
        Some(v)
    }

    /// [`Cursor::u128`] for the common case, in one pass: up to 19 digits cannot overflow a u64.
    fn u64(&mut self) -> Option<u64> {
        let (b, start) = (self.b, self.i);
        let (mut v, mut i) = (0u64, start);
        // The first eight bytes at once (most numbers here are token times of 7 or 8 digits).
        if let Some(eight) = b.get(start..start + 8) {
            let t = u64::from_le_bytes(eight.try_into().expect("eight bytes")) ^ 0x3030_3030_3030_3030;
            let len = leading_digits(t);
            if len > 0 {
                // Shifted up, the digits read as an eight-digit number with leading zeros.
                (v, i) = (eight_digits(if len == 8 { t } else { t << (8 * (8 - len)) }), start + len);
                if len < 8 {
                    if len > 1 && b[start] == b'0' {
                        return None;
                    }
                    self.i = i;
                    return Some(v);
                }
            }
        }
        while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9) {
            if i - start == 19 {
                return self.u128().and_then(|v| u64::try_from(v).ok());
            }
            v = v * 10 + u64::from(d);
            i += 1;
        }
        if i == start || (i - start > 1 && b[start] == b'0') {
            return None;
        }
        self.i = i;
        Some(v)
    }

    fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    fn opt_u64(&mut self) -> Option<Option<u64>> {
        if self.maybe(b"null") {
            Some(None)
        } else {
            self.u64().map(Some)
        }
    }

    fn bool(&mut self) -> Option<bool> {
        if self.maybe(b"true") {
            Some(true)
        } else {
            self.lit(b"false").map(|_| false)
        }
    }

    /// A string without escapes or control characters (anything else is left to serde).
    fn string(&mut self) -> Option<&'a str> {
        self.lit(b"\"")?;
        let start = self.i;
        let len = self.b[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        self.i += len;
        self.lit(b"\"")?;
        let bytes = &self.b[start..start + len];
        if bytes.is_ascii() {
            // SAFETY: ASCII is UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).ok()
        }
    }

    /// A JSON number as f64: the token handed to Rust's correctly rounded parser, as serde does.
    fn f64(&mut self) -> Option<f64> {
        let start = self.i;
        let len = self.b[start..].iter().position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))?;
        self.i += len;
        std::str::from_utf8(&self.b[start..start + len]).ok()?.parse().ok().filter(|x: &f64| x.is_finite())
    }

    fn load(&mut self) -> Option<LoadLevel> {
        if self.maybe(b"{\"mode\":\"closed\",\"users\":") {
            let users = self.usize()?;
            self.lit(b"}")?;
            Some(LoadLevel::Closed { users })
        } else {
            self.lit(b"{\"mode\":\"open\",\"rate_per_s\":")?;
            let rate_per_s = self.f64()?;
            self.lit(b"}")?;
            Some(LoadLevel::Open { rate_per_s })
        }
    }
}

/// The record on `line` if it is in the runner's exact layout, else `None` (see the module).
pub fn decode(line: &[u8]) -> Option<RequestRecord> {
    let mut token_ns = Vec::new();
    let (r, tokens, used) = decode_fields(line, &mut token_ns)?;
    (used == line.len()).then(|| Request { token_ns: &token_ns[tokens], ..r }.to_record())
}

/// The request at the start of `text` (the rest of a file) if it is in the runner's exact layout,
/// and how many bytes its line takes, line end included: one pass over the line, with no separate
/// search for where it ends. Nothing is allocated: strings are borrowed from `text`, and the token
/// times are appended to `token_ns` (left as they were when the line is refused). The request's
/// own `token_ns` is empty: its token times are `token_ns[range]`, the range returned with it.
pub fn decode_fields<'a>(text: &'a [u8], token_ns: &mut Vec<u64>) -> Option<(Request<'a>, Range<usize>, usize)> {
    let before = token_ns.len();
    let mut c = Cursor { b: text, i: 0 };
    let decoded = fields(&mut c, token_ns).and_then(|(r, tokens)| {
        // Nothing after the object but line-end whitespace.
        let rest = &c.b[c.i..];
        let end = rest.iter().position(|&b| !matches!(b, b' ' | b'\t' | b'\r')).unwrap_or(rest.len());
        match rest.get(end) {
            None => Some((r, tokens, text.len())),
            Some(b'\n') => Some((r, tokens, c.i + end + 1)),
            Some(_) => None,
        }
    });
    if decoded.is_none() {
        token_ns.truncate(before);
    }
    decoded
}

fn fields<'a>(c: &mut Cursor<'a>, token_ns: &mut Vec<u64>) -> Option<(Request<'a>, Range<usize>)> {
    c.lit(b"{\"schema\":")?;
    let schema = u32::try_from(c.u64()?).ok()?;
    c.lit(b",\"engine\":")?;
    let engine = c.string()?;
    c.lit(b",\"workload\":")?;
    let workload = c.string()?;
    c.lit(b",\"scenario\":")?;
    let scenario = c.string()?;
    c.lit(b",\"device\":")?;
    let device = c.string()?;
    c.lit(b",\"dtype\":")?;
    let dtype = c.string()?;
    c.lit(b",\"batch_size\":")?;
    let batch_size = c.usize()?;
    c.lit(b",\"prompt_tokens\":")?;
    let prompt_tokens = c.usize()?;
    c.lit(b",\"max_new_tokens\":")?;
    let max_new_tokens = c.usize()?;
    c.lit(b",\"warmup\":")?;
    let warmup = c.bool()?;
    c.lit(b",\"iteration\":")?;
    let iteration = c.usize()?;
    c.lit(b",\"generated_tokens\":")?;
    let generated_tokens = c.usize()?;
    c.lit(b",\"queue_ns\":")?;
    let queue_ns = c.u64()?;
    c.lit(b",\"ttft_ns\":")?;
    let ttft_ns = c.u64()?;
    c.lit(b",\"token_ns\":[")?;
    let start = token_ns.len();
    if !c.maybe(b"]") {
        loop {
            token_ns.push(c.u64()?);
            if c.maybe(b"]") {
                break;
            }
            c.lit(b",")?;
        }
    }
    let tokens = start..token_ns.len();
    c.lit(b",\"total_ns\":")?;
    let total_ns = c.u64()?;
    c.lit(b",\"runner_ttft_ns\":")?;
    let runner_ttft_ns = c.opt_u64()?;
    c.lit(b",\"runner_total_ns\":")?;
    let runner_total_ns = c.u64()?;
    let load = if c.maybe(b",\"load\":") { Some(c.load()?) } else { None };
    let sent_offset_ns = if c.maybe(b",\"sent_offset_ns\":") { Some(c.u64()?) } else { None };
    c.lit(b",\"unix_ms\":")?;
    let unix_ms = c.u128()?;
    let block = if c.maybe(b",\"block\":") { Some(c.usize()?) } else { None };
    let attempt = if c.maybe(b",\"attempt\":") { Some(u32::try_from(c.u64()?).ok()?) } else { None };
    let host_probe_before_ns = if c.maybe(b",\"host_probe_before_ns\":") { Some(c.u64()?) } else { None };
    let host_probe_after_ns = if c.maybe(b",\"host_probe_after_ns\":") { Some(c.u64()?) } else { None };
    c.lit(b"}")?;
    let request = Request {
        schema,
        engine,
        workload,
        scenario,
        device,
        dtype,
        batch_size,
        prompt_tokens,
        max_new_tokens,
        warmup,
        iteration,
        generated_tokens,
        queue_ns,
        ttft_ns,
        token_ns: &[],
        total_ns,
        runner_ttft_ns,
        runner_total_ns,
        load,
        sent_offset_ns,
        unix_ms,
        block,
        attempt,
        host_probe_before_ns,
        host_probe_after_ns,
    };
    Some((request, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(load: Option<LoadLevel>, runner_ttft_ns: Option<u64>) -> RequestRecord {
        let mut r = crate::testing::request("candle_cuda", 1, 20, &[5, 6, 7]);
        r.load = load;
        r.sent_offset_ns = load.map(|_| 1_234_567);
        r.runner_ttft_ns = runner_ttft_ns;
        r.unix_ms = 1_795_975_853_950;
        r
    }

    fn same(a: &RequestRecord, b: &RequestRecord) -> bool {
        serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
    }

    #[test]
    fn decodes_what_the_runner_writes_exactly_as_serde_does() {
        let loads = [
            None,
            Some(LoadLevel::Closed { users: 8 }),
            Some(LoadLevel::Open { rate_per_s: 2.5 }),
            Some(LoadLevel::Open { rate_per_s: 1e-3 }),
        ];
        for load in loads {
            for runner_ttft in [None, Some(20_300_000)] {
                let mut r = record(load, runner_ttft);
                if runner_ttft.is_some() {
                    (r.block, r.attempt, r.host_probe_before_ns, r.host_probe_after_ns) = (Some(7), Some(2), Some(180_000), Some(330_500));
                }
                let line = serde_json::to_string(&r).unwrap();
                let fast = decode(line.as_bytes()).unwrap_or_else(|| panic!("fast path refused its own layout: {line}"));
                let slow: RequestRecord = serde_json::from_str(&line).unwrap();
                assert!(same(&fast, &slow), "{line}");
                assert_eq!(fast.load, load);
            }
        }
        let mut r = record(None, None);
        r.token_ns.clear();
        let line = serde_json::to_string(&r).unwrap();
        assert!(decode(line.as_bytes()).unwrap().token_ns.is_empty());
    }

    #[test]
    fn numbers_read_eight_digits_at_a_time_as_one_by_one() {
        // Every length up to u64's 20 digits, at every offset against the end of the text, with
        // the bytes that end numbers here, and the refusals: a leading zero, overflow, no digit.
        let mut rng = seeded_rng::SplitMix64(3);
        let mut cases: Vec<String> =
            vec!["0".into(), "00".into(), "07".into(), "18446744073709551615".into(), "18446744073709551616".into()];
        for digits in 1..=21 {
            for _ in 0..200 {
                let first = 1 + rng.next_u64() % 9;
                let rest: String = (1..digits).map(|_| char::from(b'0' + (rng.next_u64() % 10) as u8)).collect();
                cases.push(format!("{first}{rest}"));
            }
        }
        for number in &cases {
            for end in ["", ",", "]", "}", ",\"x\":1", "99x"] {
                let text = format!("{number}{end}");
                let expected = {
                    let mut c = Cursor { b: text.as_bytes(), i: 0 };
                    c.u128().and_then(|v| u64::try_from(v).ok()).filter(|_| number.len() == 1 || !number.starts_with('0')).map(|v| (v, c.i))
                };
                let mut c = Cursor { b: text.as_bytes(), i: 0 };
                assert_eq!(c.u64().map(|v| (v, c.i)), expected, "{text}");
            }
        }
        let mut c = Cursor { b: b"x1", i: 0 };
        assert_eq!(c.u64(), None);
    }

    #[test]
    fn refuses_anything_else_so_serde_decides() {
        let line = serde_json::to_string(&record(Some(LoadLevel::Closed { users: 2 }), None)).unwrap();
        let variants = [
            line.replace(",\"engine\"", ", \"engine\""),                            // whitespace
            line.replace("candle_cuda", "candle\\u005fcuda"),                       // an escape
            line.replace("\"schema\":1", "\"schema\":01"),                          // not JSON
            line.replace("\"batch_size\":1", "\"batch_size\":-1"),                  // negative
            line.replace("\"queue_ns\":0", "\"queue_ns\":99999999999999999999999"), // overflow
            line.replace("\"warmup\":false", "\"warmup\":0"),
            line.trim_end_matches('}').to_string(), // truncated
            format!("{line}x"),                     // trailing bytes
            format!("{},\"schema\":1}}", line.replacen("{\"schema\":1,", "{", 1).trim_end_matches('}')), // another order
        ];
        for v in &variants {
            assert!(v != &line, "variant did not change the line");
            assert!(decode(v.as_bytes()).is_none(), "accepted {v}");
        }
        // The escaped one is still a valid record: serde reads it the same.
        let escaped: RequestRecord = serde_json::from_str(&variants[1]).unwrap();
        assert_eq!(escaped.engine, "candle_cuda");
    }
}
