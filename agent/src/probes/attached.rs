//! The files that carry user-space probes, the live processes that map each, and the links
//! to drop when the last of them is gone.
//!
//! A uprobe on a file holds a perf-event link (an fd of the agent) and the file's inode for as
//! long as it stays attached; a file no process maps any more (a short-lived binary in a temp
//! dir, an upgraded library, a stopped container's image) would hold them for nothing. So each
//! attached file, keyed by (device, inode), knows which processes use it: a process is added
//! when a scan finds the file in its maps (or its executable), a forked child inherits its
//! parent's files, and an exit, a scan that finds the process gone or mapping other files, or
//! the periodic check against the live process list removes it. A file left without users is
//! idle; still idle after a grace period, its links are handed back for detaching (a binary run
//! again and again, every few seconds by a script, keeps its probes meanwhile instead of being
//! parsed and attached at each run). A file used again later is attached again.
//!
//! Pure bookkeeping, generic over the link type: the attaching and detaching is
//! [`super::uprobes`]'s.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

/// (device, inode) of a file.
pub type FileId = (u64, u64);

/// One probed file.
#[derive(Debug)]
struct AttachedFile<L> {
    links: Vec<L>,
    users: HashSet<u32>,
}

/// A file whose last user is gone: its links, to detach.
#[derive(Debug)]
pub struct Released<L> {
    /// The file.
    pub file: FileId,
    /// Its links.
    pub links: Vec<L>,
}

/// Every probed file with its users and links.
#[derive(Debug)]
pub struct AttachedFiles<L> {
    files: HashMap<FileId, AttachedFile<L>>,
    /// The probed files each process uses (the reverse of `users`).
    by_pid: HashMap<u32, Vec<FileId>>,
    /// Files without users, since when.
    idle: HashMap<FileId, Instant>,
    links: usize,
}

impl<L> Default for AttachedFiles<L> {
    fn default() -> Self {
        Self {
            files: HashMap::new(),
            by_pid: HashMap::new(),
            idle: HashMap::new(),
            links: 0,
        }
    }
}

impl<L> AttachedFiles<L> {
    /// Whether `file` is probed already (or was tried and failed, with no links).
    pub fn contains(&self, file: &FileId) -> bool {
        self.files.contains_key(file)
    }

    /// Files probed now.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is probed.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Links held now.
    pub fn links(&self) -> usize {
        self.links
    }

    /// `file` was just attached with `links`, at `now`; it is idle until [`Self::set_users`]
    /// names its users.
    pub fn insert(&mut self, file: FileId, links: Vec<L>, now: Instant) {
        self.idle.insert(file, now);
        self.links += links.len();
        let old = self.files.insert(
            file,
            AttachedFile {
                links,
                users: HashSet::new(),
            },
        );
        if let Some(old) = old {
            // Not reached: callers check `contains` first. Keep the count right anyway.
            self.links -= old.links.len();
        }
    }

    /// Process `pid` uses exactly the probed files among `files` at `now` (a scan read its
    /// maps): it leaves the files it no longer maps.
    pub fn set_users(&mut self, pid: u32, files: impl IntoIterator<Item = FileId>, now: Instant) {
        let mut used: Vec<FileId> = files
            .into_iter()
            .filter(|f| self.files.contains_key(f))
            .collect();
        used.sort_unstable();
        used.dedup();
        let before = self.by_pid.remove(&pid).unwrap_or_default();
        for f in &used {
            if let Some(file) = self.files.get_mut(f) {
                file.users.insert(pid);
                self.idle.remove(f);
            }
        }
        let left: Vec<FileId> = before
            .into_iter()
            .filter(|f| used.binary_search(f).is_err())
            .collect();
        if !used.is_empty() {
            self.by_pid.insert(pid, used);
        }
        self.leave(pid, left, now);
    }

    /// `child` was forked by `parent`: it maps what its parent maps until it execs. (Threads
    /// are announced the same way; their ids leave at the next [`Self::retain_live`].)
    pub fn fork(&mut self, parent: u32, child: u32, now: Instant) {
        let files = self.by_pid.get(&parent).cloned().unwrap_or_default();
        self.set_users(child, files, now);
    }

    /// Process `pid` exited at `now`.
    pub fn exit(&mut self, pid: u32, now: Instant) {
        let files = self.by_pid.remove(&pid).unwrap_or_default();
        self.leave(pid, files, now);
    }

    /// Only the processes in `live` exist at `now` (a full scan listed them): every other user
    /// leaves.
    pub fn retain_live(&mut self, live: &HashSet<u32>, now: Instant) {
        let gone: Vec<u32> = self
            .by_pid
            .keys()
            .copied()
            .filter(|p| !live.contains(p))
            .collect();
        for pid in gone {
            self.exit(pid, now);
        }
    }

    /// The files idle for `grace` or longer at `now`: removed, their links handed back.
    pub fn expire(&mut self, now: Instant, grace: Duration) -> Vec<Released<L>> {
        if self.idle.is_empty() {
            return Vec::new();
        }
        let due: Vec<FileId> = self
            .idle
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= grace)
            .map(|(id, _)| *id)
            .collect();
        due.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    fn leave(&mut self, pid: u32, files: Vec<FileId>, now: Instant) {
        for id in files {
            let Some(file) = self.files.get_mut(&id) else {
                continue;
            };
            file.users.remove(&pid);
            if file.users.is_empty() {
                self.idle.entry(id).or_insert(now);
            }
        }
    }

    fn remove(&mut self, id: FileId) -> Option<Released<L>> {
        self.idle.remove(&id);
        let file = self.files.remove(&id)?;
        self.links -= file.links.len();
        Some(Released {
            file: id,
            links: file.links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBC: FileId = (1, 10);
    const GO: FileId = (1, 20);
    const GRACE: Duration = Duration::from_secs(5);

    fn files(r: &[Released<u8>]) -> Vec<FileId> {
        let mut v: Vec<FileId> = r.iter().map(|r| r.file).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_file_is_released_a_grace_period_after_its_last_user() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut a = AttachedFiles::default();
        a.insert(LIBC, vec![1, 2], t0);
        a.insert(GO, vec![3, 4, 5], t0);
        a.set_users(100, [LIBC, GO, (9, 9)], t0);
        a.set_users(200, [LIBC], t0);
        assert_eq!((a.len(), a.links()), (2, 5));
        assert!(a.expire(at(60), GRACE).is_empty(), "both in use");
        a.exit(100, at(60));
        a.exit(100, at(61)); // a second exit is harmless
        assert!(a.expire(at(64), GRACE).is_empty(), "within the grace");
        let r = a.expire(at(65), GRACE);
        assert_eq!(files(&r), [GO]);
        assert_eq!(r[0].links, [3, 4, 5]);
        assert_eq!((a.len(), a.links()), (1, 2));
        a.exit(200, at(70));
        assert_eq!(files(&a.expire(at(80), GRACE)), [LIBC]);
        assert!(a.is_empty());
        assert_eq!(a.links(), 0);
        // Used again later: attached again.
        a.insert(GO, vec![6], at(90));
        a.set_users(300, [GO], at(90));
        assert!(a.contains(&GO));
        assert!(a.expire(at(200), GRACE).is_empty());
    }

    #[test]
    fn a_file_used_again_within_the_grace_stays() {
        let t0 = Instant::now();
        let mut a = AttachedFiles::default();
        a.insert(GO, vec![1], t0);
        a.set_users(100, [GO], t0);
        a.exit(100, t0);
        a.set_users(101, [GO], t0 + Duration::from_secs(2));
        assert!(a.expire(t0 + Duration::from_secs(30), GRACE).is_empty());
    }

    #[test]
    fn exec_into_another_image_leaves_the_old_one() {
        let t0 = Instant::now();
        let mut a = AttachedFiles::default();
        a.insert(LIBC, vec![1], t0);
        a.insert(GO, vec![2], t0);
        a.set_users(100, [LIBC, GO], t0);
        a.set_users(100, [LIBC], t0);
        assert_eq!(files(&a.expire(t0 + GRACE, GRACE)), [GO]);
        a.set_users(100, [], t0 + GRACE); // a zombie maps nothing
        assert_eq!(files(&a.expire(t0 + 2 * GRACE, GRACE)), [LIBC]);
    }

    #[test]
    fn a_forked_child_keeps_the_files_after_its_parent_exits() {
        let t0 = Instant::now();
        let mut a = AttachedFiles::default();
        a.insert(GO, vec![1], t0);
        a.set_users(100, [GO], t0);
        a.fork(100, 101, t0);
        a.exit(100, t0);
        assert!(
            a.expire(t0 + GRACE, GRACE).is_empty(),
            "the daemon child runs it"
        );
        a.exit(101, t0 + GRACE);
        assert_eq!(files(&a.expire(t0 + 2 * GRACE, GRACE)), [GO]);
    }

    #[test]
    fn the_live_list_drops_missed_exits_and_unused_files() {
        let t0 = Instant::now();
        let mut a = AttachedFiles::default();
        a.insert(LIBC, vec![1], t0);
        a.insert(GO, vec![2], t0);
        a.set_users(100, [LIBC], t0);
        a.set_users(200, [LIBC, GO], t0);
        // A thread announced by a fork never exits as a process.
        a.fork(200, 201, t0);
        a.insert((3, 3), vec![], t0); // attached for a process that was gone before its scan
        a.retain_live(&HashSet::from([100]), t0);
        assert_eq!(files(&a.expire(t0 + GRACE, GRACE)), [GO, (3, 3)]);
        assert_eq!((a.len(), a.links()), (1, 1));
        a.exit(100, t0 + GRACE);
        assert_eq!(files(&a.expire(t0 + 2 * GRACE, GRACE)), [LIBC]);
    }
}
