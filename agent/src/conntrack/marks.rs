//! Which thread moved a connection's recent calls, and at what stream position: how a finished
//! record learns the thread of its first request byte and of its last response byte.
//!
//! Records carry timestamps (the time of the call that moved the byte), so each direction keeps
//! the last few calls by timestamp, plus the first call of each of the last few turns (a call
//! in one direction after one in the other: where requests and responses begin), so the
//! start of a long request is still found after many reads of its body.

use wirelens_parsers::Direction;

/// Recent calls kept per direction.
const RECENT: usize = 8;
/// Turn starts kept per direction.
const TURNS: usize = 4;

/// One call: its time, thread and stream position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// Unix ns, as the records carry it.
    pub ts: u64,
    /// Thread id (0: unknown).
    pub tid: u32,
    /// Position of the call's first byte in its direction.
    pub position: u64,
}

#[derive(Debug)]
struct Ring<const N: usize> {
    marks: [Mark; N],
    next: usize,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self {
            marks: [Mark::default(); N],
            next: 0,
        }
    }
}

impl<const N: usize> Ring<N> {
    fn push(&mut self, mark: Mark) {
        self.marks[self.next % N] = mark;
        self.next = self.next.wrapping_add(1);
    }

    fn find(&self, ts: u64) -> Option<Mark> {
        self.marks
            .iter()
            .find(|m| m.ts == ts && m.tid != 0)
            .copied()
    }
}

/// The marks of both directions of one connection.
#[derive(Debug, Default)]
pub struct CallMarks {
    recent: [Ring<RECENT>; 2],
    turns: [Ring<TURNS>; 2],
    last_dir: Option<Direction>,
}

impl CallMarks {
    /// A call moved bytes in `dir`.
    pub fn push(&mut self, dir: Direction, mark: Mark) {
        self.recent[dir.index()].push(mark);
        if self.last_dir != Some(dir) {
            self.turns[dir.index()].push(mark);
            self.last_dir = Some(dir);
        }
    }

    /// The call of direction `dir` at `ts`, if still known.
    pub fn find(&self, dir: Direction, ts: u64) -> Option<Mark> {
        self.recent[dir.index()]
            .find(ts)
            .or_else(|| self.turns[dir.index()].find(ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_recent_calls_and_the_start_of_long_turns() {
        let mut m = CallMarks::default();
        let mark = |ts, tid, position| Mark { ts, tid, position };
        m.push(Direction::Ingress, mark(100, 7, 0));
        for i in 1..=20 {
            m.push(Direction::Ingress, mark(100 + i, 7, i * 10));
        }
        m.push(Direction::Egress, mark(200, 8, 0));
        assert_eq!(m.find(Direction::Ingress, 100), Some(mark(100, 7, 0)));
        assert_eq!(m.find(Direction::Ingress, 120), Some(mark(120, 7, 200)));
        assert_eq!(m.find(Direction::Ingress, 105), None, "evicted");
        assert_eq!(m.find(Direction::Egress, 200), Some(mark(200, 8, 0)));
        assert_eq!(m.find(Direction::Egress, 100), None);
    }
}
