//! Decoding ring-buffer records into owned, typed events: the one place that reads the ABI.

use wirelens_ebpf::{
    DATA_HEADER_LEN, DataHeader, EventKind, ProcEvent, RetransmitEvent, SockErrorEvent,
    SockStateEvent, TlsAssocEvent,
};

/// One decoded ring-buffer record. Data bytes borrow the ring-buffer slot.
#[derive(Debug)]
pub enum Event<'a> {
    /// Bytes a socket call moved.
    Data {
        /// The header.
        header: DataHeader,
        /// Captured bytes (`header.cap_len` of them).
        bytes: &'a [u8],
    },
    /// A TCP state change.
    SockState(SockStateEvent),
    /// A process called exec.
    ProcExec(ProcEvent),
    /// A process exited.
    ProcExit(ProcEvent),
    /// A process forked.
    ProcFork(ProcEvent),
    /// A TLS connection keyed by its `SSL *` learnt its socket.
    TlsAssoc(TlsAssocEvent),
    /// The agent's own process used this socket for the first time.
    AgentSocket(SockStateEvent),
    /// A TCP segment was retransmitted (network metrics).
    Retransmit(RetransmitEvent),
    /// The kernel reported an error on a TCP socket (network metrics).
    SockError(SockErrorEvent),
}

/// Why a record could not be decoded (each is counted, never fatal).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its fixed part.
    #[error("record of {len} bytes is too short for kind {kind}")]
    Short {
        /// Kind read.
        kind: u32,
        /// Bytes present.
        len: usize,
    },
    /// Unknown kind.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// `cap_len` larger than the record.
    #[error("data record claims {claimed} captured bytes but carries {present}")]
    BadLength {
        /// Claimed.
        claimed: u32,
        /// Present.
        present: usize,
    },
}

fn read<T: Copy>(buf: &[u8], kind: u32) -> Result<T, DecodeError> {
    if buf.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            kind,
            len: buf.len(),
        });
    }
    // SAFETY: length checked; T is a plain-old-data ABI struct, read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

/// Decode one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<Event<'_>, DecodeError> {
    let kind = read::<u32>(buf, 0)?;
    match EventKind::from_u32(kind) {
        Some(EventKind::Data) => {
            let header: DataHeader = read(buf, kind)?;
            let rest = &buf[DATA_HEADER_LEN..];
            let n = header.cap_len as usize;
            let bytes = rest.get(..n).ok_or(DecodeError::BadLength {
                claimed: header.cap_len,
                present: rest.len(),
            })?;
            Ok(Event::Data { header, bytes })
        }
        Some(EventKind::SockState) => Ok(Event::SockState(read(buf, kind)?)),
        Some(EventKind::ProcExec) => Ok(Event::ProcExec(read(buf, kind)?)),
        Some(EventKind::ProcExit) => Ok(Event::ProcExit(read(buf, kind)?)),
        Some(EventKind::ProcFork) => Ok(Event::ProcFork(read(buf, kind)?)),
        Some(EventKind::TlsAssoc) => Ok(Event::TlsAssoc(read(buf, kind)?)),
        Some(EventKind::AgentSocket) => Ok(Event::AgentSocket(read(buf, kind)?)),
        Some(EventKind::Retransmit) => Ok(Event::Retransmit(read(buf, kind)?)),
        Some(EventKind::SockError) => Ok(Event::SockError(read(buf, kind)?)),
        None => Err(DecodeError::UnknownKind(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_unknown() {
        assert!(matches!(decode(&[1, 0]), Err(DecodeError::Short { .. })));
        assert_eq!(
            decode(&[99, 0, 0, 0]).err(),
            Some(DecodeError::UnknownKind(99))
        );
        let mut data = vec![0u8; DATA_HEADER_LEN];
        data[0] = 1;
        data[28] = 10; // cap_len = 10 with no bytes following
        assert!(matches!(
            decode(&data),
            Err(DecodeError::BadLength { claimed: 10, .. })
        ));
    }

    #[test]
    fn decodes_data_with_bytes() {
        let mut data = vec![0u8; DATA_HEADER_LEN];
        data[0] = 1;
        data[28] = 3;
        data.extend_from_slice(b"abc");
        match decode(&data) {
            Ok(Event::Data { header, bytes }) => {
                assert_eq!(header.cap_len, 3);
                assert_eq!(bytes, b"abc");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
