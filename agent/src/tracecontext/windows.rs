//! Open and recent server requests per thread, and the rule that parents a client request
//! to one of them: it must nest in exactly one server request on its thread, with no other
//! server request of that thread overlapping it.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// A server request's window on a thread: from its first request byte to its last response
/// byte (Unix ns), and the entry that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The server entry.
    pub seq: u64,
    /// First request byte.
    pub start: u64,
    /// Last response byte.
    pub end: u64,
}

/// What the rule found for one client request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nesting {
    /// No server request of the thread overlaps it: a root.
    None,
    /// It nests in this one server request, and no other overlaps it.
    In(u64),
    /// Several server requests overlap it, or one overlaps it without containing it.
    Ambiguous,
}

/// One thread's windows, by start (then entry), and the longest of them: a window that
/// overlaps an instant starts at most that long before it, so a lookup reads only the windows
/// near the call, not every window the thread has held lately (an event loop holds thousands).
#[derive(Debug, Default)]
struct Thread {
    windows: VecDeque<Window>,
    /// Longest window added since the thread last had none.
    longest: u64,
}

impl Thread {
    /// Where `w` is, or goes, in the order.
    fn index(&self, w: &Window) -> usize {
        self.windows
            .partition_point(|x| (x.start, x.seq) < (w.start, w.seq))
    }
}

/// Server windows by (process, thread).
#[derive(Debug, Default)]
pub struct ThreadWindows {
    by_thread: FxHashMap<(u32, u32), Thread>,
}

impl ThreadWindows {
    /// A server request of `pid` was read or answered by thread `tid` (0: unknown, ignored).
    pub fn add(&mut self, pid: u32, tid: u32, window: Window) {
        if tid == 0 {
            return;
        }
        let thread = self.by_thread.entry((pid, tid)).or_default();
        thread.longest = thread.longest.max(window.end.saturating_sub(window.start));
        // Windows come about in order of their ends: near the back.
        let at = thread.index(&window);
        thread.windows.insert(at, window);
    }

    /// Forget `window` on thread `tid` of `pid`.
    pub fn remove(&mut self, pid: u32, tid: u32, window: Window) {
        let Some(thread) = self.by_thread.get_mut(&(pid, tid)) else {
            return;
        };
        // Windows go oldest first: near the front.
        let at = thread.index(&window);
        if thread.windows.get(at).is_some_and(|w| w.seq == window.seq) {
            thread.windows.remove(at);
        }
        if thread.windows.is_empty() {
            self.by_thread.remove(&(pid, tid));
        }
    }

    /// Where a client request of `pid` started by thread `tid` during `[start, end]` nests.
    pub fn nesting(&self, pid: u32, tid: u32, start: u64, end: u64) -> Nesting {
        let Some(thread) = self.by_thread.get(&(pid, tid)) else {
            return Nesting::None;
        };
        // Overlapping: starts before `end`, ends after `start`, so (none being longer than
        // `longest`) starts after `start - longest`.
        let windows = &thread.windows;
        let from = windows.partition_point(|w| w.start.saturating_add(thread.longest) <= start);
        let to = windows.partition_point(|w| w.start < end);
        let mut overlapping = windows
            .range(from..to.max(from))
            .filter(|w| start < w.end)
            // A server request read by one thread and answered by another is listed twice
            // only under different threads; one thread lists it once.
            .map(|w| (w.seq, w.start <= start && end <= w.end));
        match (overlapping.next(), overlapping.next()) {
            (None, _) => Nesting::None,
            (Some((seq, true)), None) => Nesting::In(seq),
            _ => Nesting::Ambiguous,
        }
    }

    /// Threads with windows.
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.by_thread.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(seq: u64, start: u64, end: u64) -> Window {
        Window { seq, start, end }
    }

    #[test]
    fn thread_per_request_nests_in_its_own_request() {
        let mut t = ThreadWindows::default();
        t.add(1, 10, w(1, 100, 200));
        t.add(1, 11, w(2, 110, 210));
        assert_eq!(t.nesting(1, 10, 120, 150), Nesting::In(1));
        assert_eq!(t.nesting(1, 11, 120, 150), Nesting::In(2));
        assert_eq!(t.nesting(1, 12, 120, 150), Nesting::None, "other thread");
        assert_eq!(t.nesting(2, 10, 120, 150), Nesting::None, "other process");
        assert_eq!(t.nesting(1, 10, 250, 260), Nesting::None, "after it");
    }

    #[test]
    fn event_loops_parent_only_strictly_nested_requests() {
        let mut t = ThreadWindows::default();
        // Two requests interleaved on one thread.
        t.add(1, 10, w(1, 100, 200));
        t.add(1, 10, w(2, 150, 300));
        assert_eq!(t.nesting(1, 10, 110, 140), Nesting::In(1), "before 2 began");
        assert_eq!(t.nesting(1, 10, 160, 190), Nesting::Ambiguous, "both open");
        assert_eq!(t.nesting(1, 10, 210, 290), Nesting::In(2), "after 1 ended");
        // Outlives its only overlapping window: not nested.
        assert_eq!(t.nesting(1, 10, 250, 350), Nesting::Ambiguous);
        // A long window found from a call long after its start.
        t.add(1, 10, w(3, 50, 10_000));
        assert_eq!(t.nesting(1, 10, 5_000, 5_100), Nesting::In(3));
        t.remove(1, 10, w(3, 50, 10_000));
        t.remove(1, 10, w(1, 100, 200));
        t.remove(1, 10, w(2, 150, 300));
        assert_eq!(t.threads(), 0);
    }
}
