//! The requests of a run as the analysis holds them: fixed-size rows in a few large blocks, names
//! stored once per block, token times in one vector per block. A million [`RequestRecord`]s would
//! be six million small allocations (most of a gigabyte, and on these machines fresh memory costs
//! more than parsing the JSON); here they are a few dozen. Each row is read as a [`Request`]: the
//! record's fields, with borrowed names and token times.

use crate::records::{LoadLevel, RequestRecord};

/// One request of a run, borrowed from [`Requests`]: the fields of [`RequestRecord`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request<'a> {
    pub schema: u32,
    pub engine: &'a str,
    pub workload: &'a str,
    pub scenario: &'a str,
    pub device: &'a str,
    pub dtype: &'a str,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub max_new_tokens: usize,
    /// Warm-up requests are kept, flagged, and left out of every statistic.
    pub warmup: bool,
    pub iteration: usize,
    pub generated_tokens: usize,
    pub queue_ns: u64,
    pub ttft_ns: u64,
    pub token_ns: &'a [u64],
    pub total_ns: u64,
    pub runner_ttft_ns: Option<u64>,
    pub runner_total_ns: u64,
    pub load: Option<LoadLevel>,
    pub sent_offset_ns: Option<u64>,
    pub unix_ms: u128,
    pub block: Option<usize>,
    pub attempt: Option<u32>,
    pub host_probe_before_ns: Option<u64>,
    pub host_probe_after_ns: Option<u64>,
}

impl Request<'_> {
    pub fn to_record(&self) -> RequestRecord {
        RequestRecord {
            schema: self.schema,
            engine: self.engine.into(),
            workload: self.workload.into(),
            scenario: self.scenario.into(),
            device: self.device.into(),
            dtype: self.dtype.into(),
            batch_size: self.batch_size,
            prompt_tokens: self.prompt_tokens,
            max_new_tokens: self.max_new_tokens,
            warmup: self.warmup,
            iteration: self.iteration,
            generated_tokens: self.generated_tokens,
            queue_ns: self.queue_ns,
            ttft_ns: self.ttft_ns,
            token_ns: self.token_ns.to_vec(),
            total_ns: self.total_ns,
            runner_ttft_ns: self.runner_ttft_ns,
            runner_total_ns: self.runner_total_ns,
            load: self.load,
            sent_offset_ns: self.sent_offset_ns,
            unix_ms: self.unix_ms,
            block: self.block,
            attempt: self.attempt,
            host_probe_before_ns: self.host_probe_before_ns,
            host_probe_after_ns: self.host_probe_after_ns,
        }
    }
}

impl<'a> From<&'a RequestRecord> for Request<'a> {
    fn from(r: &'a RequestRecord) -> Request<'a> {
        Request {
            schema: r.schema,
            engine: &r.engine,
            workload: &r.workload,
            scenario: &r.scenario,
            device: &r.device,
            dtype: &r.dtype,
            batch_size: r.batch_size,
            prompt_tokens: r.prompt_tokens,
            max_new_tokens: r.max_new_tokens,
            warmup: r.warmup,
            iteration: r.iteration,
            generated_tokens: r.generated_tokens,
            queue_ns: r.queue_ns,
            ttft_ns: r.ttft_ns,
            token_ns: &r.token_ns,
            total_ns: r.total_ns,
            runner_ttft_ns: r.runner_ttft_ns,
            runner_total_ns: r.runner_total_ns,
            load: r.load,
            sent_offset_ns: r.sent_offset_ns,
            unix_ms: r.unix_ms,
            block: r.block,
            attempt: r.attempt,
            host_probe_before_ns: r.host_probe_before_ns,
            host_probe_after_ns: r.host_probe_after_ns,
        }
    }
}

/// A row: a request's fields, with its names as indices into the block's names and its token
/// times as a range of the block's token vector.
#[derive(Debug, Clone)]
struct Row {
    /// engine, workload, scenario, device, dtype.
    names: [u32; 5],
    schema: u32,
    batch_size: usize,
    prompt_tokens: usize,
    max_new_tokens: usize,
    iteration: usize,
    generated_tokens: usize,
    warmup: bool,
    queue_ns: u64,
    ttft_ns: u64,
    total_ns: u64,
    runner_ttft_ns: Option<u64>,
    runner_total_ns: u64,
    load: Option<LoadLevel>,
    sent_offset_ns: Option<u64>,
    unix_ms: u128,
    block: Option<usize>,
    attempt: Option<u32>,
    host_probe_before_ns: Option<u64>,
    host_probe_after_ns: Option<u64>,
    tokens: [usize; 2],
}

/// Consecutive requests of a run (one parsed chunk of the file).
#[derive(Debug, Clone, Default)]
pub struct Block {
    names: Vec<String>,
    /// The engines among `names`, in the order their first request comes.
    engines: Vec<u32>,
    rows: Vec<Row>,
    pub(crate) token_ns: Vec<u64>,
}

impl Block {
    pub(crate) fn with_capacity(rows: usize, token_ns: usize) -> Block {
        Block { rows: Vec::with_capacity(rows), token_ns: Vec::with_capacity(token_ns), ..Block::default() }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    fn name(&mut self, field: usize, s: &str) -> u32 {
        // Requests of one cell come together: the previous row's name is almost always this one.
        if let Some(last) = self.rows.last().map(|r| r.names[field]) {
            if self.names[last as usize] == s {
                return last;
            }
        }
        match self.names.iter().position(|n| n == s) {
            Some(i) => i as u32,
            None => {
                self.names.push(s.to_string());
                (self.names.len() - 1) as u32
            }
        }
    }

    /// Adds a request whose token times are already `token_ns[tokens]` of this block (as
    /// [`crate::request_line::decode_fields`] leaves them); its own `token_ns` is not read.
    pub(crate) fn push(&mut self, r: &Request, tokens: std::ops::Range<usize>) {
        let names =
            [self.name(0, r.engine), self.name(1, r.workload), self.name(2, r.scenario), self.name(3, r.device), self.name(4, r.dtype)];
        if self.rows.last().is_none_or(|row| row.names[0] != names[0]) && !self.engines.contains(&names[0]) {
            self.engines.push(names[0]);
        }
        self.rows.push(Row {
            names,
            schema: r.schema,
            batch_size: r.batch_size,
            prompt_tokens: r.prompt_tokens,
            max_new_tokens: r.max_new_tokens,
            iteration: r.iteration,
            generated_tokens: r.generated_tokens,
            warmup: r.warmup,
            queue_ns: r.queue_ns,
            ttft_ns: r.ttft_ns,
            total_ns: r.total_ns,
            runner_ttft_ns: r.runner_ttft_ns,
            runner_total_ns: r.runner_total_ns,
            load: r.load,
            sent_offset_ns: r.sent_offset_ns,
            unix_ms: r.unix_ms,
            block: r.block,
            attempt: r.attempt,
            host_probe_before_ns: r.host_probe_before_ns,
            host_probe_after_ns: r.host_probe_after_ns,
            tokens: [tokens.start, tokens.end],
        });
    }

    pub(crate) fn push_record(&mut self, r: &RequestRecord) {
        let start = self.token_ns.len();
        self.token_ns.extend_from_slice(&r.token_ns);
        self.push(&Request::from(r), start..self.token_ns.len());
    }

    pub(crate) fn get(&self, i: usize) -> Request<'_> {
        let r = &self.rows[i];
        let name = |k: usize| self.names[r.names[k] as usize].as_str();
        Request {
            schema: r.schema,
            engine: name(0),
            workload: name(1),
            scenario: name(2),
            device: name(3),
            dtype: name(4),
            batch_size: r.batch_size,
            prompt_tokens: r.prompt_tokens,
            max_new_tokens: r.max_new_tokens,
            warmup: r.warmup,
            iteration: r.iteration,
            generated_tokens: r.generated_tokens,
            queue_ns: r.queue_ns,
            ttft_ns: r.ttft_ns,
            token_ns: &self.token_ns[r.tokens[0]..r.tokens[1]],
            total_ns: r.total_ns,
            runner_ttft_ns: r.runner_ttft_ns,
            runner_total_ns: r.runner_total_ns,
            load: r.load,
            sent_offset_ns: r.sent_offset_ns,
            unix_ms: r.unix_ms,
            block: r.block,
            attempt: r.attempt,
            host_probe_before_ns: r.host_probe_before_ns,
            host_probe_after_ns: r.host_probe_after_ns,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Request<'_>> + Clone + '_ {
        (0..self.rows.len()).map(move |i| self.get(i))
    }

    /// Each row's load level (one field, without making the whole row).
    pub fn loads(&self) -> impl Iterator<Item = Option<LoadLevel>> + '_ {
        self.rows.iter().map(|r| r.load)
    }
}

/// Every request of a run, in file order.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    blocks: Vec<Block>,
    /// The index of each block's first row.
    starts: Vec<usize>,
}

impl Requests {
    pub(crate) fn from_blocks(blocks: Vec<Block>) -> Requests {
        let blocks: Vec<Block> = blocks.into_iter().filter(|b| b.len() > 0).collect();
        let starts = blocks.iter().scan(0, |n, b| Some(std::mem::replace(n, *n + b.len()))).collect();
        Requests { blocks, starts }
    }

    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    pub fn len(&self) -> usize {
        self.starts.last().zip(self.blocks.last()).map_or(0, |(start, last)| start + last.len())
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { blocks: &self.blocks, block: 0, row: 0, left: self.len() }
    }

    pub fn get(&self, i: usize) -> Option<Request<'_>> {
        (i < self.len()).then(|| self.row(i))
    }

    /// Row `i`, in file order (`i` < `len()`).
    pub fn row(&self, i: usize) -> Request<'_> {
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        self.blocks[k].get(i - self.starts[k])
    }

    /// The rows at `indices`, in that order.
    pub fn rows<'a>(&'a self, indices: &'a [usize]) -> impl Iterator<Item = Request<'a>> + Clone + 'a {
        indices.iter().map(|&i| self.row(i))
    }

    /// The engines the requests name, in the order their first request comes.
    pub fn engines(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for b in &self.blocks {
            for &e in &b.engines {
                let name = b.names[e as usize].as_str();
                if !all.contains(&name) {
                    all.push(name);
                }
            }
        }
        all
    }

    pub fn to_records(&self) -> Vec<RequestRecord> {
        self.iter().map(|r| r.to_record()).collect()
    }
}

/// The requests in file order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    blocks: &'a [Block],
    block: usize,
    row: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Request<'a>;

    fn next(&mut self) -> Option<Request<'a>> {
        while self.row >= self.blocks.get(self.block)?.len() {
            (self.block, self.row) = (self.block + 1, 0);
        }
        self.row += 1;
        self.left -= 1;
        Some(self.blocks[self.block].get(self.row - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Requests {
    type Item = Request<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Rows per block when requests are collected from records (reading a file blocks it by chunk).
const BLOCK_ROWS: usize = 1 << 16;

impl FromIterator<RequestRecord> for Requests {
    fn from_iter<I: IntoIterator<Item = RequestRecord>>(records: I) -> Requests {
        let mut blocks = vec![Block::default()];
        for r in records {
            if blocks.last().is_some_and(|b| b.len() == BLOCK_ROWS) {
                blocks.push(Block::default());
            }
            blocks.last_mut().expect("one block at least").push_record(&r);
        }
        Requests::from_blocks(blocks)
    }
}

impl From<Vec<RequestRecord>> for Requests {
    fn from(records: Vec<RequestRecord>) -> Requests {
        records.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_give_back_the_records_they_were_made_from() {
        let mut records = Vec::new();
        for (i, engine) in ["candle_cuda", "burn_cuda", "candle_cuda", "lm_rs"].iter().enumerate() {
            let mut r = crate::testing::request(engine, 1 + i, 5, &vec![7; i]);
            r.load = (i == 2).then_some(LoadLevel::Closed { users: 4 });
            r.sent_offset_ns = (i == 2).then_some(99);
            r.runner_ttft_ns = (i == 1).then_some(123);
            r.unix_ms = u128::from(u64::MAX) + i as u128;
            records.push(r);
        }
        let requests: Requests = records.clone().into();
        assert_eq!(requests.len(), 4);
        let json = |r: &RequestRecord| serde_json::to_string(r).unwrap();
        for (a, b) in requests.iter().zip(&records) {
            assert_eq!(json(&a.to_record()), json(b));
            assert_eq!(a, Request::from(b));
        }
        assert_eq!(requests.get(3).unwrap().engine, "lm_rs");
        assert!(requests.get(4).is_none());
        // Blocks read as one sequence, empty ones skipped.
        let (mut a, mut b) = (Block::default(), Block::default());
        records[..3].iter().for_each(|r| a.push_record(r));
        b.push_record(&records[3]);
        let joined = Requests::from_blocks(vec![a, Block::default(), b]);
        assert_eq!(joined.to_records().iter().map(json).collect::<Vec<_>>(), records.iter().map(json).collect::<Vec<_>>());
        assert_eq!(joined.get(3).unwrap().token_ns, &[7_000_000; 3]);
        assert_eq!(joined.iter().len(), 4);
        assert_eq!(joined.engines(), ["candle_cuda", "burn_cuda", "lm_rs"]);
        assert_eq!((&joined).into_iter().skip(1).map(|r| r.engine).collect::<Vec<_>>(), ["burn_cuda", "candle_cuda", "lm_rs"]);
        assert_eq!(joined.rows(&[3, 0, 2]).map(|r| r.batch_size).collect::<Vec<_>>(), [4, 1, 3]);
        assert!(joined.get(4).is_none());
    }
}
