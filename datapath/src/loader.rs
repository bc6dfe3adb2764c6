//! Loads Herald's eBPF object, owns its maps, attaches the programs to interfaces and runs them
//! through `BPF_PROG_TEST_RUN`. This is the crate's kernel boundary: every bpf() syscall made by
//! the datapath goes through here (via aya).

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode},
};
use datapath_common::{
    BackendValue, COUNTERS, Config, Counter, MAP_BACKENDS, MAP_CONFIG, MAP_COUNTERS, MAP_FLOWS,
    MAP_FLOWS4_TCP, MAP_FLOWS4_UDP, MAP_MAGLEV, MAP_REVNAT, MAP_SERVICES, MAP_SERVICES4,
    MAP_SVC_COUNTERS, MAX_SERVICES, ServiceCounters, ServiceKey, ServiceKey4, ServiceValue,
    TABLES_PER_SERVICE,
};

use crate::error::{Error, Result};

/// The compiled eBPF object (empty when the build skipped it with `AYA_BUILD_SKIP`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/herald-datapath"));

/// Program names in the object.
pub mod programs {
    /// The XDP load balancer.
    pub const XDP_LB: &str = "herald_xdp_lb";
    /// Benchmark twin of [`XDP_LB`] that undoes its encapsulation so repeated test runs see the
    /// original frame (not for attaching).
    pub const XDP_LB_BENCH: &str = "herald_xdp_lb_bench";
    /// XDP_PASS everything (baseline, veth peer helper).
    pub const XDP_PASS: &str = "herald_xdp_pass";
    /// XDP_DROP everything (benchmark traffic sink).
    pub const XDP_DROP: &str = "herald_xdp_drop";
    /// XDP_TX everything (bounce baseline).
    pub const XDP_TX: &str = "herald_xdp_tx";
    /// TC ingress on the backend node.
    pub const TC_INGRESS: &str = "herald_tc_ingress";
    /// TC egress on the backend node.
    pub const TC_EGRESS: &str = "herald_tc_egress";
}

/// Where bpffs is expected.
pub const BPFFS: &str = "/sys/fs/bpf";

/// How to load the object.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Maglev table size M (sizes the Maglev map).
    pub maglev_m: u32,
    /// Pin (or reuse) every map under this bpffs directory, so a restarted agent keeps state and
    /// traffic keeps flowing; `None` keeps maps private to this process.
    pub pin_dir: Option<PathBuf>,
}

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// Program return value (XDP action or TC verdict).
    pub verdict: u32,
    /// The packet as the program left it.
    pub data: Vec<u8>,
    /// Average nanoseconds per run, as the kernel measured it.
    pub nanos: u64,
}

/// A loaded datapath object.
pub struct Loader {
    ebpf: Ebpf,
    maglev_m: u32,
}

const MAP_NAMES: [&str; 11] = [
    MAP_SERVICES,
    MAP_SERVICES4,
    MAP_BACKENDS,
    MAP_MAGLEV,
    MAP_CONFIG,
    MAP_FLOWS,
    MAP_FLOWS4_TCP,
    MAP_FLOWS4_UDP,
    MAP_REVNAT,
    MAP_COUNTERS,
    MAP_SVC_COUNTERS,
];

impl Loader {
    /// Loads (but does not attach) the programs and creates or reuses the maps.
    pub fn load(cfg: &LoadConfig) -> Result<Self> {
        if OBJECT.is_empty() {
            return Err(Error::NotImplemented(
                "eBPF object not built (AYA_BUILD_SKIP was set)",
            ));
        }
        crate::maglev::check_table_size(cfg.maglev_m)?;
        let tables = MAX_SERVICES * TABLES_PER_SERVICE * cfg.maglev_m;
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(MAP_MAGLEV, tables);
        let pins: Vec<(&str, PathBuf)> = match &cfg.pin_dir {
            Some(dir) => {
                ensure_bpffs(dir)?;
                MAP_NAMES.iter().map(|n| (*n, dir.join(n))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(OBJECT)?;
        for name in [
            programs::XDP_LB,
            programs::XDP_LB_BENCH,
            programs::XDP_PASS,
            programs::XDP_DROP,
            programs::XDP_TX,
        ] {
            xdp_mut(&mut ebpf, name)?.load()?;
        }
        for name in [programs::TC_INGRESS, programs::TC_EGRESS] {
            tc_mut(&mut ebpf, name)?.load()?;
        }
        Ok(Self {
            ebpf,
            maglev_m: cfg.maglev_m,
        })
    }

    /// Maglev table size M the maps were sized for.
    pub fn maglev_m(&self) -> u32 {
        self.maglev_m
    }

    /// Writes the node configuration.
    pub fn set_config(&mut self, cfg: &Config) -> Result<()> {
        let mut a: Array<&mut MapData, Config> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_CONFIG)?)?;
        a.set(0, cfg, 0)?;
        Ok(())
    }

    /// Inserts or replaces a service entry (one atomic map update). IPv4 services go to the
    /// compact-key map the XDP program looks them up in.
    pub fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<()> {
        if let Some(k4) = key.to_v4() {
            let mut m: HashMap<&mut MapData, ServiceKey4, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES4)?)?;
            m.insert(k4, value, 0)?;
        } else {
            let mut m: HashMap<&mut MapData, ServiceKey, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
            m.insert(key, value, 0)?;
        }
        Ok(())
    }

    /// Removes a service entry; absent is fine.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<()> {
        let r = if let Some(k4) = key.to_v4() {
            let mut m: HashMap<&mut MapData, ServiceKey4, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES4)?)?;
            m.remove(&k4)
        } else {
            let mut m: HashMap<&mut MapData, ServiceKey, ServiceValue> =
                HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
            m.remove(key)
        };
        match r {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// All service entries (IPv4 and IPv6).
    pub fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>> {
        let m4: HashMap<&MapData, ServiceKey4, ServiceValue> =
            HashMap::try_from(map(&self.ebpf, MAP_SERVICES4)?)?;
        let m6: HashMap<&MapData, ServiceKey, ServiceValue> =
            HashMap::try_from(map(&self.ebpf, MAP_SERVICES)?)?;
        let mut out = Vec::new();
        for item in m4.iter() {
            let (k, v) = item?;
            out.push((k.to_key(), v));
        }
        for item in m6.iter() {
            out.push(item?);
        }
        Ok(out)
    }

    /// Inserts or replaces a backend (`id < MAX_BACKENDS`; `value.family` must be set).
    pub fn put_backend(&mut self, id: u32, value: &BackendValue) -> Result<()> {
        if value.family == 0 {
            return Err(Error::InvalidBackend(format!(
                "backend {id} has no address family"
            )));
        }
        let mut a: Array<&mut MapData, BackendValue> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_BACKENDS)?)?;
        a.set(id, value, 0)?;
        Ok(())
    }

    /// Removes a backend (zeroes its slot); absent is fine.
    pub fn delete_backend(&mut self, id: u32) -> Result<()> {
        let mut a: Array<&mut MapData, BackendValue> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_BACKENDS)?)?;
        a.set(id, BackendValue::default(), 0)?;
        Ok(())
    }

    /// All backends (slots in use).
    pub fn backends(&self) -> Result<Vec<(u32, BackendValue)>> {
        let a: Array<&MapData, BackendValue> = Array::try_from(map(&self.ebpf, MAP_BACKENDS)?)?;
        backends_in(&a)
    }

    /// Writes Maglev table number `table` (backend ids, one per slot; length M).
    pub fn write_table(&mut self, table: u32, slots: &[u32]) -> Result<()> {
        let m = self.maglev_m;
        if slots.len() != m as usize || table >= MAX_SERVICES * TABLES_PER_SERVICE {
            return Err(Error::InvalidBackend(format!(
                "table {table} of {} slots does not fit M={m}",
                slots.len()
            )));
        }
        let mut a: Array<&mut MapData, u32> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_MAGLEV)?)?;
        let base = table * m;
        for (i, id) in slots.iter().enumerate() {
            a.set(base + i as u32, id, 0)?;
        }
        Ok(())
    }

    /// Reads Maglev table number `table`.
    pub fn read_table(&self, table: u32) -> Result<Vec<u32>> {
        let m = self.maglev_m;
        let a: Array<&MapData, u32> = Array::try_from(map(&self.ebpf, MAP_MAGLEV)?)?;
        (0..m).map(|i| Ok(a.get(&(table * m + i), 0)?)).collect()
    }

    /// Global counters summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        let a: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map(&self.ebpf, MAP_COUNTERS)?)?;
        let mut out = Vec::with_capacity(COUNTERS as usize);
        for c in Counter::ALL {
            let v = a.get(&(c as u32), 0)?;
            out.push((c, v.iter().sum()));
        }
        Ok(out)
    }

    /// One service's counters summed over CPUs.
    pub fn service_counters(&self, id: u32) -> Result<ServiceCounters> {
        let a: PerCpuArray<&MapData, ServiceCounters> =
            PerCpuArray::try_from(map(&self.ebpf, MAP_SVC_COUNTERS)?)?;
        let v = a.get(&id, 0)?;
        Ok(v.iter()
            .fold(ServiceCounters::default(), |acc, c| ServiceCounters {
                packets: acc.packets + c.packets,
                bytes: acc.bytes + c.bytes,
            }))
    }

    /// Attaches an XDP program; `Driver` mode first when `native` is asked for, else `Skb`.
    pub fn attach_xdp(&mut self, program: &str, ifname: &str, native: bool) -> Result<XdpMode> {
        let prog = xdp_mut(&mut self.ebpf, program)?;
        if native && prog.attach(ifname, XdpMode::Driver).is_ok() {
            return Ok(XdpMode::Driver);
        }
        prog.attach(ifname, XdpMode::Skb)?;
        Ok(XdpMode::Skb)
    }

    /// Attaches the backend-node TC programs (ingress decap, egress reverse NAT) through tcx.
    pub fn attach_tc(&mut self, ifname: &str) -> Result<()> {
        tc_mut(&mut self.ebpf, programs::TC_INGRESS)?.attach(ifname, TcAttachType::Ingress)?;
        tc_mut(&mut self.ebpf, programs::TC_EGRESS)?.attach(ifname, TcAttachType::Egress)?;
        Ok(())
    }

    /// Runs an XDP program once (or `repeat` times) on `input` with `BPF_PROG_TEST_RUN`.
    pub fn run_xdp(&mut self, program: &str, input: &[u8], repeat: u32) -> Result<RunResult> {
        let prog = xdp_mut(&mut self.ebpf, program)?;
        run(prog, input, repeat)
    }

    /// Runs a TC program on `input` with `BPF_PROG_TEST_RUN`.
    pub fn run_tc(&mut self, program: &str, input: &[u8], repeat: u32) -> Result<RunResult> {
        let prog = tc_mut(&mut self.ebpf, program)?;
        run(prog, input, repeat)
    }
}

impl Loader {
    /// Transmits `repeat` copies of `frame` out of interface `ifindex` (of the calling thread's
    /// network namespace) with `BPF_PROG_RUN` in live-frames mode: `program` runs on each copy
    /// and its `XDP_TX` sends it. A packet generator for benchmarks; returns the kernel's time
    /// per repetition.
    pub fn xdp_live_tx(
        &mut self,
        program: &str,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
        batch: u32,
    ) -> Result<std::time::Duration> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex (u32 each); the kernel wants data_end = frame length, no metadata.
        let mut ctx = [0u8; 24];
        let len = u32::try_from(frame.len())
            .map_err(|_| Error::InvalidBackend(format!("{}-byte frame", frame.len())))?;
        ctx[4..8].copy_from_slice(&len.to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let prog = xdp_mut(&mut self.ebpf, program)?;
        let r = prog.test_run(TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: repeat.max(1),
            attrs: aya::programs::TestRunAttrs::new().xdp_live_frames(batch),
            ..TestRunOptions::default()
        })?;
        Ok(r.duration)
    }
}

/// The in-use slots of a backend array.
pub(crate) fn backends_in<T: std::borrow::Borrow<MapData>>(
    a: &Array<T, BackendValue>,
) -> Result<Vec<(u32, BackendValue)>> {
    let mut out = Vec::new();
    for (id, v) in a.iter().enumerate() {
        let v = v?;
        if v.family != 0 {
            out.push((id as u32, v));
        }
    }
    Ok(out)
}

fn run<P>(prog: &mut P, input: &[u8], repeat: u32) -> Result<RunResult>
where
    for<'a> P: TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
{
    // Room for the encapsulation headers the program may push.
    let mut out = vec![0u8; input.len() + 256];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut out),
        repeat: repeat.max(1),
        ..TestRunOptions::default()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok(RunResult {
        verdict: r.return_value,
        data: out,
        nanos: r.duration.as_nanos() as u64,
    })
}

fn map<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a aya::maps::Map> {
    ebpf.map(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))?;
    Ok(p.try_into()?)
}

fn tc_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::MissingObject(name.to_string()))?;
    Ok(p.try_into()?)
}

/// Makes `dir` usable for pinning: it must lie on a bpf filesystem. A directory under
/// `/sys/fs/bpf` gets bpffs mounted there when it is missing (a fresh mount namespace, such as
/// `ip netns exec` makes, has none); any other directory must already be on a bpffs mount (the
/// lab runner mounts one per lab). Creates `dir`.
pub fn ensure_bpffs(dir: &Path) -> Result<()> {
    if !on_bpffs(dir)? {
        if !dir.starts_with(BPFFS) {
            return Err(Error::Io(std::io::Error::other(format!(
                "{} is not on a bpf filesystem (mount one with `mount -t bpf bpf DIR`)",
                dir.display()
            ))));
        }
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf", BPFFS])
            .status()?;
        if !status.success() {
            return Err(Error::Io(std::io::Error::other(format!(
                "mount -t bpf bpf {BPFFS} failed: {status}"
            ))));
        }
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Whether the nearest existing ancestor of `dir` (or `dir` itself) is on a bpf filesystem.
fn on_bpffs(dir: &Path) -> Result<bool> {
    let mut p = dir;
    loop {
        if p.exists() {
            let st = nix::sys::statfs::statfs(p).map_err(|e| Error::Io(e.into()))?;
            return Ok(st.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return Ok(false),
        }
    }
}

/// Removes the maps [`Loader::load`] pinned under `dir`, then `dir` itself when that leaves it
/// empty. Pins that are absent are fine. Returns how many pins were removed.
pub fn unpin_maps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for name in MAP_NAMES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
            ) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(removed)
}

/// Whether any map is pinned under `dir` (a previous agent's state).
pub fn has_pinned_maps(dir: &Path) -> bool {
    MAP_NAMES.iter().any(|n| dir.join(n).exists())
}
