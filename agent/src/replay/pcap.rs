//! Reading a capture file (pcap, either byte order, µs or ns; or pcapng) held in memory, frame
//! by frame, with timestamps in Unix nanoseconds.

use pcap_parser::{
    Block, PcapBlockOwned, PcapError, PcapNGSlice, nom,
    pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header},
};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, Unix ns.
    pub ts_ns: u64,
    /// Link type of the interface (`LINKTYPE_*`).
    pub linktype: i32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Why a file cannot be read as a capture at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Neither pcap nor pcapng magic.
    #[error("not a pcap or pcapng capture (unknown file signature)")]
    NotACapture,
    /// A capture signature but an unreadable file header.
    #[error("invalid {0} file header")]
    BadHeader(&'static str),
}

/// The file format, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// What reading the whole file ended with.
#[derive(Debug, Default)]
pub struct ReadEnd {
    /// Frames handed out.
    pub frames: u64,
    /// Packet blocks that were skipped (unknown interface, ...).
    pub skipped_blocks: u64,
    /// Why reading stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

/// The format of `data`, from its signature.
pub fn detect(data: &[u8]) -> Result<Format, OpenError> {
    let magic = data.get(..4).ok_or(OpenError::NotACapture)?;
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => Ok(Format::PcapNg),
        [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0xc3, 0xd4]
        | [0x4d, 0x3c, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x34, 0xcd, 0xb2, 0xa1] => Ok(Format::Pcap),
        _ => Err(OpenError::NotACapture),
    }
}

/// Hand every frame of `data` to `f`, in file order.
pub fn read(data: &[u8], f: impl FnMut(Frame<'_>)) -> Result<ReadEnd, OpenError> {
    match detect(data)? {
        Format::Pcap => read_pcap(data, f),
        Format::PcapNg => read_pcapng(data, f),
    }
}

fn stop_reason<I>(err: &nom::Err<PcapError<I>>) -> String {
    match err {
        nom::Err::Incomplete(_) => "the file ends in the middle of a record (truncated)".into(),
        nom::Err::Error(e) | nom::Err::Failure(e) => format!("corrupt record ({})", describe(e)),
    }
}

fn describe<I>(e: &PcapError<I>) -> &'static str {
    match e {
        PcapError::Eof => "end of file",
        PcapError::ReadError => "read error",
        PcapError::Incomplete(_) => "incomplete",
        PcapError::HeaderNotRecognized => "header not recognized",
        PcapError::NomError(..) | PcapError::OwnedNomError(..) => "parse error",
        PcapError::BufferTooSmall => "buffer too small",
        PcapError::UnexpectedEof => "unexpected end of file",
    }
}

fn read_pcap(data: &[u8], mut f: impl FnMut(Frame<'_>)) -> Result<ReadEnd, OpenError> {
    let (mut rest, header) = parse_pcap_header(data).map_err(|_| OpenError::BadHeader("pcap"))?;
    let nanos = header.is_nanosecond_precision();
    let linktype = header.network.0;
    let parse = if header.is_modified_format() {
        parse_pcap_frame_modified
    } else if header.is_bigendian() {
        parse_pcap_frame_be
    } else {
        parse_pcap_frame
    };
    let mut end = ReadEnd::default();
    while !rest.is_empty() {
        match parse(rest) {
            Ok((next, frame)) => {
                rest = next;
                let frac = u64::from(frame.ts_usec) * if nanos { 1 } else { 1000 };
                f(Frame {
                    ts_ns: u64::from(frame.ts_sec) * 1_000_000_000 + frac,
                    linktype,
                    data: frame.data,
                });
                end.frames += 1;
            }
            Err(err) => {
                end.stopped = Some(stop_reason(&err));
                break;
            }
        }
    }
    Ok(end)
}

struct Interface {
    linktype: i32,
    /// Units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

fn read_pcapng(data: &[u8], mut f: impl FnMut(Frame<'_>)) -> Result<ReadEnd, OpenError> {
    let blocks = PcapNGSlice::from_slice(data).map_err(|_| OpenError::BadHeader("pcapng"))?;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut end = ReadEnd::default();
    let mut last_ts = 0u64;
    for block in blocks {
        let block = match block {
            Ok(PcapBlockOwned::NG(b)) => b,
            Ok(_) => continue,
            Err(err) => {
                end.stopped = Some(stop_reason(&err));
                break;
            }
        };
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => interfaces.push(Interface {
                linktype: idb.linktype.0,
                resolution: idb.ts_resolution().unwrap_or(1_000_000),
                offset: idb.ts_offset(),
            }),
            Block::EnhancedPacket(epb) => {
                let Some(iface) = interfaces.get(epb.if_id as usize) else {
                    end.skipped_blocks += 1;
                    continue;
                };
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts_ns = to_ns(raw, iface.resolution, iface.offset);
                last_ts = ts_ns;
                let len = (epb.caplen as usize).min(epb.data.len());
                f(Frame {
                    ts_ns,
                    linktype: iface.linktype,
                    data: &epb.data[..len],
                });
                end.frames += 1;
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = interfaces.first() else {
                    end.skipped_blocks += 1;
                    continue;
                };
                // No timestamp in a simple packet block: the previous packet's.
                let len = (spb.origlen as usize).min(spb.data.len());
                f(Frame {
                    ts_ns: last_ts,
                    linktype: iface.linktype,
                    data: &spb.data[..len],
                });
                end.frames += 1;
            }
            _ => {}
        }
    }
    Ok(end)
}

/// `raw` units of `1/resolution` s, plus `offset` seconds, in ns (saturating).
fn to_ns(raw: u64, resolution: u64, offset: i64) -> u64 {
    let resolution = u128::from(resolution.max(1));
    let raw = u128::from(raw);
    let ns = (raw / resolution) * 1_000_000_000 + (raw % resolution) * 1_000_000_000 / resolution;
    let ns = ns as i128 + i128::from(offset) * 1_000_000_000;
    ns.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_any_resolution() {
        assert_eq!(to_ns(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(to_ns(1_500_000_001, 1_000_000_000, 0), 1_500_000_001);
        assert_eq!(to_ns(3, 2, 1), 2_500_000_000);
    }

    #[test]
    fn rejects_non_captures_and_reads_truncated() {
        assert!(matches!(
            read(b"hello world", |_| {}),
            Err(OpenError::NotACapture)
        ));
        assert!(matches!(read(b"", |_| {}), Err(OpenError::NotACapture)));
        // A little-endian µs pcap header, one 4-byte frame, then half a record header.
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&65535u32.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend_from_slice(&7u32.to_le_bytes());
        file.extend_from_slice(&9u32.to_le_bytes());
        file.extend_from_slice(&4u32.to_le_bytes());
        file.extend_from_slice(&4u32.to_le_bytes());
        file.extend_from_slice(b"abcd");
        file.extend_from_slice(&[1, 2, 3]);
        let mut frames = Vec::new();
        let end = read(&file, |fr| frames.push((fr.ts_ns, fr.data.to_vec()))).expect("reads");
        assert_eq!(frames, vec![(7_000_009_000, b"abcd".to_vec())]);
        assert!(end.stopped.is_some_and(|s| s.contains("truncated")));
    }
}
