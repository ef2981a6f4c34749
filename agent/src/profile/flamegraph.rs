//! A [`Profile`] as folded stacks and as an SVG flame graph (`inferno`). Kernel frames carry
//! inferno's `_[k]` suffix so they are coloured apart.

use super::aggregate::Profile;

/// Folded stacks, one line per (process, stack): `comm;root;...;leaf count`.
pub fn folded(profile: &Profile) -> Vec<String> {
    let mut lines = Vec::new();
    for process in profile.processes.values() {
        for (stack, n) in &process.stacks {
            let mut line = sanitize(&process.comm);
            for f in stack.iter().rev() {
                line.push(';');
                line.push_str(&sanitize(&f.function));
                if f.kernel {
                    line.push_str("_[k]");
                }
            }
            line.push(' ');
            line.push_str(&n.to_string());
            lines.push(line);
        }
    }
    lines.sort();
    lines
}

/// `;` separates frames and the last space the count: neither may appear in a name.
fn sanitize(name: &str) -> String {
    name.replace([';', '\n'], ":")
}

/// The SVG of `profile`.
pub fn svg(profile: &Profile, title: &str) -> anyhow::Result<Vec<u8>> {
    let lines = folded(profile);
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_string();
    options.count_name = "samples".to_string();
    let mut out = Vec::new();
    if lines.is_empty() {
        // inferno refuses an empty input; an empty graph still says what happened.
        options.title = format!("{title} (no samples)");
        inferno::flamegraph::from_lines(
            &mut options,
            ["[no samples] 1"].iter().copied(),
            &mut out,
        )?;
    } else {
        inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::profile::symbolize::Frame;

    fn frame(name: &str, kernel: bool) -> Frame {
        Frame {
            function: Arc::from(name),
            module: Arc::from("m"),
            kernel,
        }
    }

    #[test]
    fn folded_lines_go_root_first_with_kernel_marks() {
        let mut p = Profile::new(1);
        p.add(
            1,
            "prog",
            vec![
                frame("vfs_write", true),
                frame("leaf;x", false),
                frame("main", false),
            ],
            2,
        );
        assert_eq!(folded(&p), ["prog;main;leaf:x;vfs_write_[k] 2"]);
        let image = String::from_utf8(svg(&p, "t").expect("svg")).expect("utf-8");
        assert!(image.contains("main") && image.contains("vfs_write"));
        let empty = String::from_utf8(svg(&Profile::new(1), "t").expect("svg")).expect("utf-8");
        assert!(empty.contains("no samples"));
    }
}
