//! The `flows` map, and the I/O edge that carries out a worker's [`Intent`]s on it.
//!
//! Runs of installs go to the kernel in one `BPF_MAP_UPDATE_BATCH` call; a removal reads
//! and deletes each entry in one `BPF_MAP_LOOKUP_AND_DELETE_ELEM` call (its last counts are
//! folded in); a poll reads each entry. None of this is per packet: per session event, and
//! per session per poll interval.

use super::entry::{KEY_SIZE, Key, Totals, VALUE_SIZE, Value};
use super::intent::Intent;
use super::program;
use crate::datapath::Datapath;
use dataplane_common::packet_io::xdp::bpf::{self, Asm, map_type};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The map of established flows the XDP program forwards itself: two entries per full-NAT
/// session, one per DR session.
#[derive(Debug)]
pub struct Flows {
    map: OwnedFd,
}

impl Flows {
    /// A map of up to `entries` entries.
    ///
    /// # Errors
    /// When the kernel refuses (not root, too large for the memory limits).
    pub fn create(entries: u32) -> io::Result<Self> {
        let map = bpf::map_create(
            map_type::HASH,
            KEY_SIZE as u32,
            VALUE_SIZE as u32,
            entries.max(1),
            "l4lb_flows",
        )?;
        Ok(Self { map })
    }

    /// Appends the fast path for this map to a program being assembled (see
    /// [`super::program`]); pass it as the prologue of
    /// [`dataplane_common::packet_io::xdp::Program::attach_with`].
    pub fn emit(&self, a: &mut Asm) {
        program::emit(a, self.map.as_raw_fd());
    }

    /// The entry of `key`, if any.
    ///
    /// # Errors
    /// When the kernel refuses.
    pub fn get(&self, key: &Key) -> io::Result<Option<Value>> {
        let mut v = Value::default();
        Ok(bpf::map_lookup(&self.map, &key.0, &mut v.0)?.then_some(v))
    }

    /// Sets the entry of `key` (tests, and the fallback when batches are refused).
    ///
    /// # Errors
    /// When the kernel refuses (the map is full).
    pub fn set(&self, key: &Key, value: &Value) -> io::Result<()> {
        bpf::map_update(&self.map, &key.0, &value.0)
    }

    fn take(&self, key: &Key) -> io::Result<Option<Value>> {
        let mut v = Value::default();
        Ok(bpf::map_lookup_and_delete(&self.map, &key.0, &mut v.0)?.then_some(v))
    }
}

/// One worker's buffers for [`Applier::apply`], allocated once.
#[derive(Debug, Default)]
pub struct Applier {
    intents: Vec<Intent>,
    keys: Vec<u8>,
    values: Vec<u8>,
    staged: u32,
    errors: u64,
}

/// Up to how many installs go in one batch call.
const BATCH: usize = 256;

impl Applier {
    /// Buffers for `intents` intents at a time.
    pub fn new(intents: usize) -> Self {
        Self {
            intents: Vec::with_capacity(intents),
            keys: Vec::with_capacity(BATCH * KEY_SIZE),
            values: Vec::with_capacity(BATCH * VALUE_SIZE),
            staged: 0,
            errors: 0,
        }
    }

    /// Carries out `dp`'s queued intents on `flows`, in order, and reports back to `dp`
    /// (at `now_ticks`) what polls and removals read, until none is queued (reports may
    /// queue removals). Failed map operations are counted in `dp`.
    pub fn apply(&mut self, flows: &Flows, dp: &mut Datapath, now_ticks: u64) {
        loop {
            dp.take_fast_path_intents(&mut self.intents);
            if self.intents.is_empty() {
                break;
            }
            for i in 0..self.intents.len() {
                match self.intents[i] {
                    Intent::Install { client, real } => {
                        for e in [Some(client), real].into_iter().flatten() {
                            self.keys.extend_from_slice(&e.key.0);
                            self.values.extend_from_slice(&e.value.0);
                            self.staged += 1;
                        }
                        if self.staged as usize >= BATCH {
                            self.flush(flows);
                        }
                    }
                    Intent::Poll {
                        session,
                        client,
                        real,
                    } => {
                        self.flush(flows);
                        let t = self.read([Some(client), real], |k| flows.get(k));
                        dp.fast_path_report(now_ticks, session, &client, t);
                    }
                    Intent::Remove {
                        client,
                        real,
                        vip,
                        real_server,
                        folded,
                    } => {
                        self.flush(flows);
                        let t = self.read([Some(client), real], |k| flows.take(k));
                        dp.fast_path_removed(vip, real_server, t.since(folded));
                    }
                }
            }
            self.flush(flows);
            self.intents.clear();
        }
        if self.errors > 0 {
            dp.fast_path_errors(std::mem::take(&mut self.errors));
        }
    }

    /// The sum of the entries' counters (a missing entry counts nothing).
    fn read(
        &mut self,
        keys: [Option<Key>; 2],
        mut get: impl FnMut(&Key) -> io::Result<Option<Value>>,
    ) -> Totals {
        let mut t = Totals::default();
        for k in keys.iter().flatten() {
            match get(k) {
                Ok(Some(v)) => t = t.plus(v.totals()),
                Ok(None) => {}
                Err(e) => {
                    self.errors += 1;
                    tracing::debug!(error = %e, "fast path: reading an entry failed");
                }
            }
        }
        t
    }

    /// Installs the staged entries: one batch call, or one call each when the batch is
    /// refused part way (the rest still goes in).
    fn flush(&mut self, flows: &Flows) {
        if self.staged == 0 {
            return;
        }
        if let Err((done, e)) =
            bpf::map_update_batch(&flows.map, &self.keys, &self.values, self.staged)
        {
            tracing::debug!(error = %e, done, "fast path: batch install refused");
            for i in done as usize..self.staged as usize {
                let key = &self.keys[i * KEY_SIZE..(i + 1) * KEY_SIZE];
                let value = &self.values[i * VALUE_SIZE..(i + 1) * VALUE_SIZE];
                if let Err(e) = bpf::map_update(&flows.map, key, value) {
                    self.errors += 1;
                    tracing::debug!(error = %e, "fast path: install failed");
                }
            }
        }
        self.keys.clear();
        self.values.clear();
        self.staged = 0;
    }
}
