//! A container's (or pod's) figures from its cgroup files: cgroup v2 where the unified
//! hierarchy has them, else the v1 controllers' files (hybrid hosts such as this project's
//! CI machine keep cpu, memory and blkio on v1 and only the core `cpu.stat` on v2).
//!
//! | figure | cgroup v2 | cgroup v1 |
//! |---|---|---|
//! | CPU time user/system | `cpu.stat` `user_usec`, `system_usec` | `cpuacct.usage_user`, `cpuacct.usage_sys` (ns) |
//! | memory | `memory.current` | `memory.usage_in_bytes` |
//! | page faults | `memory.stat` `pgfault`, `pgmajfault` | `memory.stat` `total_pgfault`, `total_pgmajfault` |
//! | disk bytes | `io.stat` `rbytes`, `wbytes` (all devices) | `blkio.throttle.io_service_bytes_recursive` `Read`, `Write` |
//! | throttling | `cpu.stat` `nr_periods`, `nr_throttled`, `throttled_usec` | `cpu.stat` `nr_periods`, `nr_throttled`, `throttled_time` (ns) |
//!
//! Paths come from `/proc/self/mountinfo` (where each hierarchy is mounted, and its root) and
//! `/proc/<pid>/cgroup` of one of the container's processes, cut at the component that names the
//! container id (podman nests its processes one level below, in `.../libpod-<id>.scope/container`).
//! A pod's cgroup is the parent of its containers'.

use std::path::{Path, PathBuf};

use wirelens_otel::resource_metrics::CgroupFigures;

/// The v1 controllers read.
const CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "blkio"];

/// A cgroup hierarchy's mount: where, and which cgroup is its root.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mount {
    point: PathBuf,
    root: String,
}

impl Mount {
    /// The directory of cgroup `path` (as `/proc/<pid>/cgroup` names it) under this mount.
    fn dir(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        Some(self.point.join(rest.trim_start_matches('/')))
    }
}

/// Where the cgroup hierarchies are mounted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mounts {
    unified: Option<Mount>,
    /// One per entry of [`CONTROLLERS`].
    v1: [Option<Mount>; 4],
}

impl Mounts {
    /// This process's view, from `/proc/self/mountinfo`.
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|text| Self::parse(&text))
            .unwrap_or_default()
    }

    /// The mounts in the text of a `mountinfo` file.
    pub fn parse(mountinfo: &str) -> Self {
        let mut mounts = Self::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(root), Some(point), Some(fstype)) = (left.get(3), left.get(4), right.first())
            else {
                continue;
            };
            let mount = Mount {
                point: PathBuf::from(unescape(point)),
                root: unescape(root),
            };
            match *fstype {
                "cgroup2" => mounts.unified = Some(mount),
                "cgroup" => {
                    let options = right.get(2).copied().unwrap_or("");
                    for (i, controller) in CONTROLLERS.iter().enumerate() {
                        if options.split(',').any(|o| o == *controller) {
                            mounts.v1[i] = Some(mount.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }
}

/// `\040`-style escapes of mountinfo paths.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The directories of one container's (or pod's) cgroup, per hierarchy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupDirs {
    unified: Option<PathBuf>,
    /// One per entry of [`CONTROLLERS`].
    v1: [Option<PathBuf>; 4],
}

impl CgroupDirs {
    /// The directories of container `id`, from the text of a process's `/proc/<pid>/cgroup`.
    /// `None` when no line names the container.
    pub fn of_container(mounts: &Mounts, cgroup_file: &str, id: &str) -> Option<Self> {
        let mut dirs = Self::default();
        let mut found = false;
        for line in cgroup_file.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(hierarchy), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(path) = cut_at(path, id) else {
                continue;
            };
            if hierarchy == "0" {
                if let Some(dir) = mounts.unified.as_ref().and_then(|m| m.dir(path)) {
                    dirs.unified = Some(dir);
                    found = true;
                }
                continue;
            }
            for (i, controller) in CONTROLLERS.iter().enumerate() {
                if controllers.split(',').any(|c| c == *controller)
                    && let Some(dir) = mounts.v1[i].as_ref().and_then(|m| m.dir(path))
                {
                    dirs.v1[i] = Some(dir);
                    found = true;
                }
            }
        }
        found.then_some(dirs)
    }

    /// The parent cgroup of each (a container's pod).
    pub fn parent(&self) -> Self {
        let up = |d: &Option<PathBuf>| d.as_deref().and_then(Path::parent).map(Path::to_path_buf);
        Self {
            unified: up(&self.unified),
            v1: std::array::from_fn(|i| up(&self.v1[i])),
        }
    }

    fn v1_file(&self, controller: &str, file: &str) -> Option<String> {
        let i = CONTROLLERS.iter().position(|c| *c == controller)?;
        read(&self.v1[i].as_ref()?.join(file))
    }

    fn v2_file(&self, file: &str) -> Option<String> {
        read(&self.unified.as_ref()?.join(file))
    }

    /// Every figure the files give now (`start_ns` left 0).
    pub fn read(&self) -> CgroupFigures {
        let v2_cpu = self.v2_file("cpu.stat");
        let v2_memory_stat = self.v2_file("memory.stat");
        let cpu = v2_cpu
            .as_deref()
            .and_then(|t| {
                let user = key(t, "user_usec")?;
                let system = key(t, "system_usec")?;
                Some((user as f64 / 1e6, system as f64 / 1e6))
            })
            .or_else(|| {
                let user = number(&self.v1_file("cpuacct", "cpuacct.usage_user")?)?;
                let system = number(&self.v1_file("cpuacct", "cpuacct.usage_sys")?)?;
                Some((user as f64 / 1e9, system as f64 / 1e9))
            });
        let memory_usage = self
            .v2_file("memory.current")
            .or_else(|| self.v1_file("memory", "memory.usage_in_bytes"))
            .and_then(|t| number(&t));
        let faults = v2_memory_stat
            .as_deref()
            .and_then(|t| faults(t, "pgfault", "pgmajfault"))
            .or_else(|| {
                let t = self.v1_file("memory", "memory.stat")?;
                faults(&t, "total_pgfault", "total_pgmajfault")
                    .or_else(|| faults(&t, "pgfault", "pgmajfault"))
            });
        let disk = self
            .v2_file("io.stat")
            .and_then(|t| io_stat(&t))
            .or_else(|| {
                let t = self.v1_file("blkio", "blkio.throttle.io_service_bytes_recursive")?;
                blkio_bytes(&t)
            });
        let throttling = v2_cpu
            .as_deref()
            .and_then(|t| {
                Some((
                    key(t, "nr_periods")?,
                    key(t, "nr_throttled")?,
                    key(t, "throttled_usec")? as f64 / 1e6,
                ))
            })
            .or_else(|| {
                let t = self.v1_file("cpu", "cpu.stat")?;
                Some((
                    key(&t, "nr_periods")?,
                    key(&t, "nr_throttled")?,
                    key(&t, "throttled_time")? as f64 / 1e9,
                ))
            });
        CgroupFigures {
            start_ns: 0,
            cpu,
            memory_usage,
            disk,
            faults,
            throttling,
        }
    }
}

/// `path` up to and including the component naming container `id`.
fn cut_at<'a>(path: &'a str, id: &str) -> Option<&'a str> {
    let at = path.find(id)?;
    let end = path[at..].find('/').map_or(path.len(), |slash| at + slash);
    Some(&path[..end])
}

/// A cgroup file's text, at most 64 KiB.
fn read(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `name` in a flat-keyed file (`name value` lines).
fn key(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// (minor, major) page faults from a `memory.stat` whose total is `all`.
fn faults(text: &str, all: &str, major: &str) -> Option<(u64, u64)> {
    let all = key(text, all)?;
    let major = key(text, major)?;
    Some((all.saturating_sub(major), major))
}

/// Bytes read and written over every device of a v2 `io.stat`
/// (`8:0 rbytes=.. wbytes=.. rios=..` lines).
fn io_stat(text: &str) -> Option<(u64, u64)> {
    let mut sums = (0u64, 0u64);
    for field in text.split_whitespace() {
        if let Some(n) = field
            .strip_prefix("rbytes=")
            .and_then(|n| n.parse::<u64>().ok())
        {
            sums.0 = sums.0.saturating_add(n);
        } else if let Some(n) = field
            .strip_prefix("wbytes=")
            .and_then(|n| n.parse::<u64>().ok())
        {
            sums.1 = sums.1.saturating_add(n);
        }
    }
    Some(sums)
}

/// Bytes read and written over every device of a v1 `blkio.*io_service_bytes*`
/// (`8:0 Read 4096` lines, then `Total`).
fn blkio_bytes(text: &str) -> Option<(u64, u64)> {
    let mut sums = (0u64, 0u64);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_device), Some(op), Some(n)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match op {
            "Read" => sums.0 = sums.0.saturating_add(n),
            "Write" => sums.1 = sums.1.saturating_add(n),
            _ => {}
        }
    }
    Some(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a96f7261ec5c3667820aa009bb295d6e8af76537fb49c980e97771bff694da5a";

    const HYBRID_MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,blkio
";

    #[test]
    fn hybrid_mounts_and_a_podman_container() {
        let mounts = Mounts::parse(HYBRID_MOUNTINFO);
        let cgroup = format!(
            "7:blkio:/libpod_parent/libpod-{ID}\n4:memory:/libpod_parent/libpod-{ID}\n\
             1:cpu,cpuacct:/libpod_parent/libpod-{ID}\n0::/libpod_parent/libpod-{ID}\n"
        );
        let dirs = CgroupDirs::of_container(&mounts, &cgroup, ID).expect("found");
        let base = format!("libpod_parent/libpod-{ID}");
        assert_eq!(
            dirs.unified,
            Some(Path::new("/sys/fs/cgroup/unified").join(&base))
        );
        assert_eq!(
            dirs.v1[1],
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct").join(&base))
        );
        assert_eq!(
            dirs.v1[2],
            Some(Path::new("/sys/fs/cgroup/memory").join(&base))
        );
        assert_eq!(
            dirs.parent().v1[2],
            Some(PathBuf::from("/sys/fs/cgroup/memory/libpod_parent"))
        );
        assert!(CgroupDirs::of_container(&mounts, "0::/user.slice\n", ID).is_none());
    }

    #[test]
    fn pure_v2_systemd_podman_nests_below_the_scope() {
        let mounts = Mounts::parse(
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        let cgroup = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        let dirs = CgroupDirs::of_container(&mounts, &cgroup, ID).expect("found");
        assert_eq!(
            dirs.unified,
            Some(PathBuf::from(format!(
                "/sys/fs/cgroup/machine.slice/libpod-{ID}.scope"
            )))
        );
        assert!(dirs.v1.iter().all(Option::is_none));
    }

    #[test]
    fn a_mount_of_a_subtree_rebases_paths() {
        let mount = Mount {
            point: PathBuf::from("/host/cgroup"),
            root: "/kubepods".into(),
        };
        assert_eq!(
            mount.dir("/kubepods/pod1/abc"),
            Some(PathBuf::from("/host/cgroup/pod1/abc"))
        );
        assert_eq!(mount.dir("/system.slice/x"), None);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn files_parse() {
        let cpu = "usage_usec 27416\nuser_usec 13708\nsystem_usec 13708\nnr_periods 10\n\
                   nr_throttled 2\nthrottled_usec 5000\n";
        assert_eq!(key(cpu, "user_usec"), Some(13708));
        assert_eq!(key(cpu, "throttled_usec"), Some(5000));
        assert_eq!(key(cpu, "nice_usec"), None);
        assert_eq!(
            io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n253:0 rbytes=1 wbytes=2\n"),
            Some((4097, 8194))
        );
        assert_eq!(
            blkio_bytes("8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n"),
            Some((4096, 512))
        );
        assert_eq!(
            faults(
                "total_pgfault 120\ntotal_pgmajfault 20\n",
                "total_pgfault",
                "total_pgmajfault"
            ),
            Some((100, 20))
        );
        assert_eq!(key("garbage\n\n x y\n", "x"), None);
        assert_eq!(
            cut_at("/a/libpod-abc.scope/container", "abc"),
            Some("/a/libpod-abc.scope")
        );
    }

    #[test]
    fn missing_files_give_no_figures() {
        let dirs = CgroupDirs {
            unified: Some(PathBuf::from("/nonexistent/cgroup")),
            v1: Default::default(),
        };
        let f = dirs.read();
        assert_eq!(f, CgroupFigures::default());
    }
}
