//! Interleaved, paired measurement: every engine of a workload loaded at once, each in its own
//! fresh process, and the measured requests of a cell taken in blocks: every engine once per
//! block, in a seeded random order, on the same prompt. Engines compared this way sample the same
//! host states (../shared/MEASURING.md), and the analysis pairs their requests by block.

use std::collections::HashMap;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Workload;
use crate::process::{EngineProcess, Fault};
use run_format::records::{unix_ms, CellRecord, SCHEMA};
use crate::registry::EngineSpec;
use seeded_rng::SplitMix64;
use crate::run::{fail, plan, Around, Cell, Launch, Runner};
use crate::stop::stopping;

/// One engine of an interleaved workload: its launch, its process while it has one, and its
/// progress through the current cell.
struct Seat<'s> {
    launch: Launch<'s>,
    proc: Option<EngineProcess>,
    /// Throughput: the smallest batch that ran out of memory, per prompt length.
    oom_batch: HashMap<usize, usize>,
    cell: SeatCell,
    /// Why the engine has no process after a crash it could not be restarted from: each later
    /// cell is recorded as failed with it.
    gone: Option<Fault>,
}

/// What one engine did in the current cell.
#[derive(Default)]
struct SeatCell {
    /// Taking part (not skipped, finished before, or out after a fault).
    active: bool,
    completed: usize,
    tokens: usize,
    measured_ns: u64,
    requests: usize,
    started_unix_ms: u128,
    fault: Option<Fault>,
}

/// The order of one block: the engines' seats, shuffled (Fisher–Yates) by a seed of the block.
pub fn block_order(seats: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..seats).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

impl Runner<'_> {
    /// A latency or throughput workload with all its engines loaded at once and measured in
    /// interleaved blocks (see the module).
    pub(crate) fn interleaved_workload(&mut self, w: &Workload, engines: &[&EngineSpec]) -> anyhow::Result<()> {
        let cells: Vec<Cell> = plan(w).into_iter().filter(|c| engines.iter().any(|e| !self.is_finished(&e.name, w, c))).collect();
        if cells.is_empty() {
            return Ok(());
        }
        let mut seats: Vec<Seat> = engines
            .iter()
            .map(|spec| Seat {
                launch: self.launch(spec, None),
                proc: None,
                oom_batch: HashMap::new(),
                cell: SeatCell::default(),
                gone: None,
            })
            .collect();
        self.start_all(w, &mut seats, &cells)?;
        let per_cell = self.cfg.benchmark.warmup_iterations + w.iterations;
        let bar = ProgressBar::new((cells.len() * per_cell * seats.len()) as u64)
            .with_style(ProgressStyle::with_template("{prefix:>32} {bar:30} {pos}/{len} requests {elapsed}").expect("valid template"));
        bar.set_prefix(format!("{} engines · {} (interleaved)", seats.len(), w.name));
        for cell in &cells {
            if stopping() {
                break;
            }
            self.interleaved_cell(w, cell, &mut seats, &bar)?;
        }
        for seat in seats {
            if let Some(p) = seat.proc {
                p.shutdown();
            }
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Starts every engine's process and sends all the `load`s before waiting for any, so the
    /// engines load side by side (their load times then overlap: the records say so by their
    /// timestamps). An engine that fails to load has every cell of the workload recorded as failed.
    fn start_all(&mut self, w: &Workload, seats: &mut [Seat], cells: &[Cell]) -> anyhow::Result<()> {
        let timeout = self.cfg.benchmark.load_timeout_s;
        let mut pending = Vec::new();
        for (k, seat) in seats.iter_mut().enumerate() {
            let started = self.spawn(&seat.launch, &seat.launch.spec.name).and_then(|mut p| {
                let deadline = p.begin_load(seat.launch.load.clone(), timeout)?;
                Ok((p, deadline))
            });
            pending.push((k, started));
        }
        for (k, started) in pending {
            let ready = started.and_then(|(mut p, deadline)| p.finish_load(deadline, timeout).map(|r| (p, r)));
            let name = seats[k].launch.spec.name.clone();
            match ready {
                Ok((mut p, ready)) => {
                    self.on_ready(&mut p, &seats[k].launch, w, ready)?;
                    seats[k].proc = Some(p);
                }
                Err(f) => {
                    eprintln!("✗ {name}: load failed: {f}");
                    let f = Fault::Spawn(format!("load failed: {f}"));
                    let open: Vec<&Cell> = cells.iter().filter(|c| !self.is_finished(&name, w, c)).collect();
                    for c in open {
                        self.raw.append("failures", &fail(&name, &w.name, Some((c.batch, c.prompt)), &f))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn interleaved_cell(&mut self, w: &Workload, cell: &Cell, seats: &mut [Seat], bar: &ProgressBar) -> anyhow::Result<()> {
        let warmups = self.cfg.benchmark.warmup_iterations;
        for seat in seats.iter_mut() {
            let name = seat.launch.spec.name.clone();
            seat.cell = SeatCell { started_unix_ms: unix_ms(), ..SeatCell::default() };
            if self.is_finished(&name, w, cell) {
                continue;
            }
            if seat.proc.is_none() {
                if let Some(f) = &seat.gone {
                    self.raw.append("failures", &fail(&name, &w.name, Some((cell.batch, cell.prompt)), f))?;
                }
                continue;
            }
            if let Some(why) = self.skip_reason(&seat.launch, w, cell, &seat.oom_batch) {
                self.skip(&name, w, cell, why)?;
                continue;
            }
            seat.cell.active = true;
        }
        // Warm-up, engine by engine: the first requests of a cell (new shapes) are not paired.
        for seat in seats.iter_mut().filter(|s| s.cell.active) {
            for i in 0..warmups {
                if stopping() {
                    return Ok(());
                }
                self.tag_phase(&seat.launch, Some(w), Some(cell), seat.proc.as_ref().and_then(EngineProcess::pid), Some("warmup"));
                self.one_request(w, cell, seat, i, true, i, Around::default())?;
                bar.inc(1);
                if !seat.cell.active {
                    break;
                }
            }
        }
        let seed = self.cfg.benchmark.seed ^ (cell.prompt as u64).rotate_left(32) ^ (cell.batch as u64).rotate_left(48);
        let mut block = 0;
        loop {
            let more = seats.iter().any(|s| s.cell.active && (block < w.iterations || self.wants_more(w, s.cell.measured_ns, block)));
            if !more {
                break;
            }
            for k in block_order(seats.len(), seed.wrapping_add(block as u64)) {
                let seat = &mut seats[k];
                if !seat.cell.active {
                    continue;
                }
                if stopping() {
                    return Ok(()); // not finished: no cell records, so a resumed run measures it again
                }
                self.cool_down();
                self.tag_phase(&seat.launch, Some(w), Some(cell), seat.proc.as_ref().and_then(EngineProcess::pid), Some("measured"));
                let around = Around { block: Some(block), probe_before_ns: self.probe(), probe_after_ns: None };
                self.one_request(w, cell, seat, warmups + block, false, block, around)?;
                bar.inc(1);
            }
            block += 1;
        }
        for seat in seats.iter_mut() {
            self.close_cell(w, cell, seat)?;
        }
        Ok(())
    }

    /// One request of one engine in a cell; a fault takes the engine out of the rest of the cell
    /// (and, when the process did not survive it, a fresh process is started for the next cell).
    #[allow(clippy::too_many_arguments)]
    fn one_request(
        &mut self,
        w: &Workload,
        cell: &Cell,
        seat: &mut Seat,
        i: usize,
        warmup: bool,
        iteration: usize,
        mut around: Around,
    ) -> anyhow::Result<()> {
        let p = seat.proc.as_mut().expect("active seats have a process");
        let got = p
            .generate(self.request(w, cell, i, warmup, iteration), self.cfg.benchmark.request_timeout_s)
            .and_then(|t| Self::check_shape(&t, cell.batch, w.max_new_tokens).map(|_| t));
        if around.block.is_some() {
            around.probe_after_ns = self.probe();
        }
        match got {
            Ok(t) => {
                seat.cell.completed += 1;
                if !warmup {
                    seat.cell.tokens += t.done.tokens.iter().map(Vec::len).sum::<usize>();
                    seat.cell.measured_ns += t.runner_total_ns;
                    seat.cell.requests += 1;
                }
                let record = self.record(&seat.launch, w, cell, warmup, iteration, t, None, around);
                self.raw.append("requests", &record)?;
            }
            Err(f) => {
                let name = &seat.launch.spec.name;
                eprintln!("✗ {name} {} {}: {f}", w.name, cell.label());
                self.raw.append("failures", &fail(name, &w.name, Some((cell.batch, cell.prompt)), &f))?;
                if f.kind() == "out_of_memory" {
                    let b = seat.oom_batch.entry(cell.prompt).or_insert(cell.batch);
                    *b = (*b).min(cell.batch);
                }
                seat.cell.active = false;
                seat.cell.fault = Some(f);
            }
        }
        Ok(())
    }

    /// The cell's record for one engine that took part, and a fresh process if its own died.
    fn close_cell(&mut self, w: &Workload, cell: &Cell, seat: &mut Seat) -> anyhow::Result<()> {
        if !seat.cell.active && seat.cell.fault.is_none() {
            return Ok(()); // skipped, finished before, or not loaded
        }
        let name = seat.launch.spec.name.clone();
        let pid = seat.proc.as_ref().and_then(EngineProcess::pid);
        let measured = crate::monitor::Tag {
            engine: Some(name.clone()),
            workload: Some(w.name.clone()),
            cell: Some(cell.label()),
            phase: Some("measured".into()),
            pid,
        };
        let (rss_bytes, peak_rss_bytes) = seat.proc.as_ref().map_or((None, None), EngineProcess::rss);
        let record = CellRecord {
            schema: SCHEMA,
            engine: name.clone(),
            workload: w.name.clone(),
            scenario: w.scenario.as_str().into(),
            device: seat.launch.device.clone(),
            batch_size: cell.batch,
            prompt_tokens: cell.prompt,
            max_new_tokens: w.max_new_tokens,
            load: None,
            status: if seat.cell.fault.is_some() { "failed".into() } else { "ok".into() },
            completed_requests: seat.cell.completed,
            generated_tokens: seat.cell.tokens,
            // Interleaved, the cell's wall time is shared: each engine's is its own requests' time.
            wall_ns: seat.cell.measured_ns,
            rss_bytes,
            peak_rss_bytes,
            gpu: self.monitor.as_ref().map(|m| m.take_cell(&measured)),
            thermal_pause_ms: 0,
            started_unix_ms: seat.cell.started_unix_ms,
            attempt: Some(self.attempt),
        };
        self.raw.append("cells", &record)?;
        if seat.cell.fault.as_ref().is_some_and(|f| !f.process_survives()) {
            drop(seat.proc.take());
            let started = Instant::now();
            match self.start(&seat.launch, &name) {
                Ok((mut p, ready)) => {
                    self.on_ready(&mut p, &seat.launch, w, ready)?;
                    seat.proc = Some(p);
                    eprintln!("{name}: restarted in {:.1} s", started.elapsed().as_secs_f64());
                }
                Err(f) => {
                    eprintln!("✗ {name}: could not be restarted ({f}); its remaining cells are not measured");
                    seat.gone = Some(Fault::Spawn(format!("restart after a crash failed: {f}")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_holds_every_engine_once_in_a_seeded_order() {
        let orders: Vec<Vec<usize>> = (0..200).map(|b| block_order(5, 42 + b)).collect();
        for o in &orders {
            let mut s = o.clone();
            s.sort();
            assert_eq!(s, vec![0, 1, 2, 3, 4]);
        }
        assert_eq!(orders, (0..200).map(|b| block_order(5, 42 + b)).collect::<Vec<_>>(), "same seed, same order");
        // Each engine comes first about equally often (no engine always follows another).
        let firsts: Vec<usize> = (0..5).map(|e| orders.iter().filter(|o| o[0] == e).count()).collect();
        assert!(firsts.iter().all(|&n| (20..=60).contains(&n)), "{firsts:?}");
    }
}
