//! The wirelens binary: loads the eBPF programs, tracks connections, runs the parsers, feeds the sinks.
//!
//! `wirelens` with no arguments traces every process on the host and prints one line per
//! request; with an OTLP endpoint configured it also exports spans and metrics. See `cli.rs`
//! for flags and their precedence, `pipeline.rs` for the data path.

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use tracing::{error, info, warn};
use wirelens_otel::export::{self as otlp, ExportConfig, Overrides};

use wirelens::{
    cli::{self, Cli, OutputFormat, Settings},
    jvm, lock, memlimit, metadata, netmetrics, panics,
    pipeline::{self, Reporting, Sinks},
    privileges, probes, profile, replay, resource_metrics, scripts, sinks,
    stats::{ExportCounts, Stats},
    tracecontext::TraceContextConfig,
};

/// How long shutdown waits for the exporter to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => match cli::one_line(&err) {
            // --help, --version: clap prints them and exits 0.
            None => err.exit(),
            Some(line) => {
                eprintln!("wirelens: error: {line}");
                return ExitCode::from(2);
            }
        },
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WIRELENS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    panics::install();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            // One line each: a capability check names every missing capability on its own line.
            for line in format!("{err:#}").lines() {
                eprintln!("wirelens: error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(mut cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.take();
    if let Some(cli::Command::Replay(args)) = &command {
        // No root, no eBPF, no lock file: a capture file through the same pipeline.
        return replay::run(args, &cli.resolve()?);
    }
    let settings = cli.resolve()?;
    // Capabilities, not root as such: a container gets exactly these (README, "Kubernetes").
    let granted = privileges::check()?;
    if let Some(cap) = granted.lacking_optional {
        warn!(
            "missing capability {}: needed for {}",
            cap.name, cap.needed_for
        );
    }
    let _lock = lock::InstanceLock::acquire(&settings.lock_file)?;
    if let Some(cli::Command::Profile(args)) = &command {
        return profile::command::run(args);
    }
    let mut export = ExportConfig::from_env(&Overrides {
        endpoint: settings.otlp_endpoint.clone(),
        protocol: settings.otlp_protocol.clone(),
    })
    .context("invalid OTLP export settings")?;
    if export.is_none() && settings.prometheus.is_some() {
        // Metrics are aggregated for the Prometheus endpoint even with nothing sent over OTLP.
        export =
            Some(ExportConfig::without_otlp_from_env().context("invalid OTLP export settings")?);
    }
    if let Some(config) = &mut export {
        config.max_metric_series = settings.max_metric_series;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("wirelens-export")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    // The exporter and the Prometheus endpoint start before the probes load, so that
    // `/readyz` answers (503) while they do.
    let agent_process = agent_resource(settings.command_line);
    let host =
        wirelens_otel::logs::host_resource(&agent_process.host_name, &agent_process.service_name);
    let (otlp_sender, export_handle, mut self_ports, reader) = match &export {
        Some(config) => {
            let ports = local_endpoint_ports(config);
            let (tx, handle, reader) = if settings.prometheus.is_some() {
                let (tx, handle, reader) =
                    otlp::spawn_with_reader(config.clone(), agent_process, runtime.handle());
                (tx, handle, Some(reader))
            } else {
                let (tx, handle) = otlp::spawn(config.clone(), agent_process, runtime.handle());
                (tx, handle, None)
            };
            (Some(tx), Some(handle), ports, reader)
        }
        None => (None, None, Vec::new(), None),
    };
    let prometheus = match (&settings.prometheus, reader) {
        (Some(config), Some(reader)) => {
            let (bound, health) = sinks::prometheus::serve(config, reader, runtime.handle())?;
            info!(listen = %bound, "prometheus endpoint: /metrics, /healthz, /readyz");
            // Scrapes of our own endpoint are not traced.
            self_ports.push(bound.port());
            Some(health)
        }
        _ => None,
    };

    let trace_context = TraceContextConfig::from_lookup(&|k| std::env::var(k).ok())
        .context("invalid trace-context settings")?;
    let probes = probes::Probes::load(&settings)?;
    let stats = Arc::new(Stats::default());

    let (live, printer) = match settings.output {
        OutputFormat::None => (None, None),
        format => {
            let (tx, handle) =
                sinks::live::spawn(format, stats.clone()).context("cannot start the live view")?;
            (Some(tx), Some(handle))
        }
    };

    // Every running process is read before `ready`: connections that predate the agent
    // belong to processes no exec or fork event will announce.
    let mut processes = metadata::process::ProcessCache::with_command_line(settings.command_line);
    let mut peers = None;
    if let Some(config) = settings.kubernetes.clone() {
        let node = config.node_name.clone();
        let watched = metadata::kubernetes::spawn(config)?;
        processes.set_pods(watched.pods);
        info!(node = %node, peers = watched.peers.is_some(), "watching this node's pods on the kubernetes api");
        peers = watched.peers;
    }
    let scanned = processes.scan_running();
    // The resource metrics source shares the pod metadata (its own process cache reads /proc).
    let pods = processes.pods().cloned();
    tracing::debug!(processes = scanned, "read the running processes");

    let script_host = host.clone();
    let script_source = match &settings.scripts {
        Some(config) => Some(start_scripts(
            config,
            &settings,
            export.as_ref(),
            host,
            live.clone(),
            processes.pods().cloned(),
            runtime.handle(),
        )?),
        None => None,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let reporting = reporting(
        export_handle.as_ref().map(|h| h.monitor()),
        settings.memory_limit,
        script_source
            .as_ref()
            .map(|s| (s.counters(), script_host.clone())),
    );
    let (network, network_thread) = match (&export, &export_handle) {
        (Some(config), Some(handle)) if settings.network_metrics => {
            let config = netmetrics::NetworkMetricsConfig {
                interval: config.metric_interval,
                max_endpoints: settings.network_max_endpoints,
                command_line: settings.command_line,
            };
            let (accounting, thread) = netmetrics::spawn(config, handle.monitor(), stop.clone())
                .context("cannot start the network metrics thread")?;
            (Some(accounting), Some(thread))
        }
        _ => {
            if settings.network_metrics {
                warn!("--network-metrics needs an OTLP endpoint or --prometheus-listen: off");
            }
            (None, None)
        }
    };
    let reader = {
        let stats = stats.clone();
        let stop = stop.clone();
        let sinks = Sinks {
            live,
            otlp: otlp_sender,
            self_ports,
            trace_context,
            network,
        };
        let ports = settings.ports.clone();
        let max = settings.max_connections;
        std::thread::Builder::new()
            .name("wirelens-reader".into())
            .spawn(move || {
                pipeline::run(
                    probes, ports, max, sinks, stats, stop, reporting, processes, peers,
                )
            })
            .context("cannot start the reader thread")?
    };

    let profiler = start_profiler(&settings, runtime.handle(), stop.clone())?;
    let jvm = match (&export, &export_handle) {
        (Some(config), Some(handle)) if settings.jvm_metrics => {
            let config = jvm::JvmConfig {
                interval: config.metric_interval,
                command_line: settings.command_line,
            };
            Some(
                jvm::spawn(config, handle.monitor(), stop.clone())
                    .context("cannot start the JVM metrics thread")?,
            )
        }
        _ => None,
    };
    let resources = match (&export, &export_handle) {
        (Some(config), Some(handle)) if settings.resource_metrics => {
            let config = resource_metrics::ResourceMetricsConfig {
                interval: config.metric_interval,
                command_line: settings.command_line,
                selection: resource_metrics::select::Selection {
                    pids: settings.pids.clone(),
                    comms: settings.comms.clone(),
                    containers: probes::cgroup_filter::Selector::new(
                        &settings.containers,
                        &settings.k8s_namespaces,
                        settings.k8s_pod_selector.clone(),
                    ),
                    ports: settings.ports.clone(),
                },
                pods: pods.clone(),
            };
            Some(
                resource_metrics::spawn(config, handle.monitor(), stop.clone())
                    .context("cannot start the resource metrics thread")?,
            )
        }
        _ => None,
    };
    if let Some(health) = &prometheus {
        health.set_ready();
    }

    info!(
        filters = %describe_filters(&settings),
        export = %export.as_ref().map(|c| c.describe()).unwrap_or_else(|| "off".into()),
        "wirelens ready: probes attached, tracing"
    );
    panics::inject_if_asked();

    runtime.block_on(wait_for_signal())?;
    info!("stopping: flushing connections and exports");
    stop.store(true, Ordering::Relaxed);
    let snapshot = match reader.join() {
        Ok(s) => s,
        Err(_) => bail!("the reader thread panicked"),
    };
    let mut snapshot = snapshot;
    if let Some(source) = script_source {
        eprintln!("{}", source.finish(&runtime, FLUSH_TIMEOUT));
    }
    if let Some(jvm) = jvm
        && jvm.join().is_err()
    {
        warn!("the JVM metrics thread panicked");
    }
    if let Some(resources) = resources
        && resources.join().is_err()
    {
        warn!("the resource metrics thread panicked");
    }
    if let Some(thread) = network_thread
        && thread.join().is_err()
    {
        warn!("the network metrics thread panicked");
    }
    if let Some(profiler) = profiler {
        eprintln!("{}", profiler.finish(&runtime, FLUSH_TIMEOUT));
    }
    if let Some(handle) = export_handle {
        // Export counters are final only once the exporter has flushed.
        snapshot.export = export_counts(runtime.block_on(handle.shutdown(FLUSH_TIMEOUT)));
    }
    if let Some(printer) = printer {
        let _ = printer.join();
    }
    eprintln!("{}", snapshot.summary());
    Ok(())
}

/// Continuous CPU profiling, when an OTLP profiles endpoint is set and the rate is not 0.
fn start_profiler(
    settings: &Settings,
    runtime: &tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Option<profile::continuous::Continuous>> {
    let signal = otlp::profiles_from_env(&Overrides {
        endpoint: settings.otlp_endpoint.clone(),
        protocol: settings.otlp_protocol.clone(),
    })
    .context("invalid OTLP export settings for profiles")?;
    let Some(signal) = signal.filter(|_| settings.profile_frequency > 0) else {
        return Ok(None);
    };
    let config = profile::continuous::ContinuousConfig {
        frequency: settings.profile_frequency,
        interval: settings.profile_interval,
        pids: settings.pids.clone(),
        comms: settings.comms.clone(),
        command_line: settings.command_line,
    };
    let profiler = profile::continuous::start(&config, &signal, runtime, stop)?;
    info!(
        frequency = settings.profile_frequency,
        interval = %humantime::format_duration(settings.profile_interval),
        endpoint = %signal.endpoint,
        "continuous CPU profiling on"
    );
    Ok(Some(profiler))
}

fn export_counts(s: otlp::ExportStats) -> ExportCounts {
    ExportCounts {
        spans_exported: s.spans_exported,
        spans_dropped: s.spans_dropped,
        failures: s.export_failures,
    }
}

/// The script source and its logs exporter.
struct ScriptSource {
    scripts: scripts::Scripts,
    logs: Option<(otlp::logs::LogsHandle, Arc<otlp::logs::LogExportStats>)>,
}

impl ScriptSource {
    fn counters(&self) -> Arc<scripts::ScriptCounters> {
        self.scripts.counters()
    }

    /// Stop the scripts, flush their logs; the summary line.
    fn finish(self, runtime: &tokio::runtime::Runtime, timeout: Duration) -> String {
        let counters = self.scripts.counters();
        self.scripts.stop();
        let mut line = String::from("scripts:");
        for (name, value) in counters.metrics() {
            line.push_str(&format!(
                " {}={value}",
                name.trim_start_matches("wirelens.script.")
            ));
        }
        if let Some((handle, stats)) = self.logs {
            runtime.block_on(handle.shutdown(timeout));
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            line.push_str(&format!(
                " logs_exported={} logs_dropped={}",
                get(&stats.exported),
                get(&stats.dropped)
            ));
        }
        line
    }
}

/// Start the bpftrace scripts, with an OTLP logs exporter when a logs endpoint is set.
fn start_scripts(
    config: &scripts::ScriptsConfig,
    settings: &Settings,
    export: Option<&ExportConfig>,
    host: opentelemetry_proto::tonic::resource::v1::Resource,
    live: Option<sinks::live::LiveSender>,
    pods: Option<metadata::kubernetes::PodStore>,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<ScriptSource> {
    let signal = otlp::logs_from_env(&Overrides {
        endpoint: settings.otlp_endpoint.clone(),
        protocol: settings.otlp_protocol.clone(),
    })
    .context("invalid OTLP export settings for logs")?;
    let logs = match signal {
        Some(signal) => {
            let base = match export {
                Some(c) => c.clone(),
                None => {
                    ExportConfig::without_otlp_from_env().context("invalid OTLP export settings")?
                }
            };
            let settings = otlp::logs::LogsSettings::from_export(&base);
            let (sender, handle) = otlp::logs::spawn(&signal, settings, host, runtime)
                .context("cannot start the OTLP logs exporter")?;
            info!(endpoint = %signal.endpoint, "script rows exported as OTLP logs");
            Some((sender, handle))
        }
        None => None,
    };
    let command_line = settings.command_line;
    let make_cache = move || {
        let mut cache = metadata::process::ProcessCache::with_command_line(command_line);
        if let Some(pods) = &pods {
            cache.set_pods(pods.clone());
        }
        cache
    };
    let sender = logs.as_ref().map(|(s, _)| s.clone());
    let stats = logs.as_ref().map(|(s, _)| s.stats());
    let running = scripts::spawn(config, sender, live, make_cache)
        .context("cannot start the script threads")?;
    let names: Vec<&str> = config.scripts.iter().map(|s| &*s.name).collect();
    info!(scripts = ?names, bpftrace = %config.bpftrace.display(), "bpftrace scripts running");
    Ok(ScriptSource {
        scripts: running,
        logs: logs.zip(stats).map(|((_, handle), stats)| (handle, stats)),
    })
}

/// Counter plumbing between the reader thread and the exporter.
fn reporting(
    monitor: Option<otlp::ExportMonitor>,
    memory_limit: u64,
    scripts: Option<(
        Arc<scripts::ScriptCounters>,
        opentelemetry_proto::tonic::resource::v1::Resource,
    )>,
) -> Reporting {
    let counts = monitor.clone();
    let shedder = monitor.clone();
    Reporting {
        memory: memlimit::MemoryLimiter::new(memory_limit),
        shed_exports: Box::new(move || shedder.as_ref().map_or(0, |m| m.shed_queued())),
        export_counts: Box::new(move || {
            counts
                .as_ref()
                .map(|m| export_counts(m.stats()))
                .unwrap_or_default()
        }),
        publish: Box::new(move |snap| {
            if let Some(m) = &monitor {
                m.set_agent_counters(snap.metrics());
                m.set_agent_gauges(snap.levels.gauges());
                if let Some((counters, host)) = &scripts {
                    m.set_agent_counters(counters.metrics());
                    let sums = counters.column_sums();
                    if !sums.is_empty() {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as u64);
                        m.set_source_metrics(
                            "scripts",
                            wirelens_otel::logs::column_metrics(&sums, host, now),
                        );
                    }
                }
            }
        }),
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn describe_filters(s: &Settings) -> String {
    let mut parts = Vec::new();
    if !s.pids.is_empty() {
        parts.push(format!("pid={:?}", s.pids));
    }
    if !s.ports.is_empty() {
        parts.push(format!("port={:?}", s.ports));
    }
    if !s.comms.is_empty() {
        parts.push(format!("comm={:?}", s.comms));
    }
    if !s.containers.is_empty() {
        parts.push(format!("container={:?}", s.containers));
    }
    if !s.k8s_namespaces.is_empty() {
        parts.push(format!("k8s_namespace={:?}", s.k8s_namespaces));
    }
    if let Some(selector) = &s.k8s_pod_selector {
        parts.push(format!("k8s_pod_selector={selector}"));
    }
    if let Some(exes) = &s.exes {
        parts.push(format!("exe={exes}"));
    }
    if parts.is_empty() {
        "whole host".into()
    } else {
        parts.join(" ")
    }
}

/// The Resource for the agent's own metrics.
fn agent_resource(command_line: metadata::process::CommandLine) -> wirelens_otel::ProcessInfo {
    let mut cache = metadata::process::ProcessCache::with_command_line(command_line);
    let mut comm = [0u8; 16];
    comm[..8].copy_from_slice(b"wirelens");
    let mut info = (*cache.get(std::process::id(), &comm)).clone();
    info.service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "wirelens".into());
    if info.executable_name.is_empty() {
        warn!("cannot read our own /proc entry");
    }
    info
}

/// Ports of OTLP endpoints on this host: the collector's side of our own exports is not traced.
fn local_endpoint_ports(config: &ExportConfig) -> Vec<u16> {
    [&config.traces, &config.metrics]
        .into_iter()
        .flatten()
        .filter(|s| {
            matches!(
                s.endpoint.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
            ) || s.endpoint.host_str().is_some_and(|h| h.starts_with("127."))
        })
        .filter_map(|s| s.endpoint.port_or_known_default())
        .collect()
}
