//! Nothing secret leaves the host. Known secrets are planted in every protocol's traffic here
//! (HTTP credentials, headers, query and body; a PostgreSQL URL password and literal; a MariaDB
//! password and literal; a Redis password and value; a NATS message body and header), in the
//! clients' command lines and in their environment. Then every byte the agent put out is
//! searched: the raw OTLP payloads of every signal (as the receiver got them off the wire), the
//! live view on stdout and the agent's debug log on stderr. Zero hits.
//!
//! Twice: with the defaults (`process.command_line` not exported at all, JSON live view), and
//! with `--command-line redacted` (exported, secrets replaced; text live view). Controls, the
//! non-secret parts of the same requests (a path, a column, a key, a subject, the redacted
//! command line), must be found in the same bytes, so the search reaches the data and can fail.
//!
//! Needs root, `scripts/setup.sh` and a built agent; run one at a time (`--test-threads=1`).

use wirelens_tests::{
    ClientProcess, ClientRun, DbServer, Nginx, Scenario, Span, free_port, nats_server, python,
};

/// Secrets, each a string found nowhere else.
const CURL_PASSWORD: &str = "curlpw5f2a9cq";
const BEARER: &str = "bearer7d1e4bq";
const COOKIE: &str = "cookie3c8f21q";
const API_KEY: &str = "apikey9b4e77q";
const QUERY_TOKEN: &str = "qtoken2a6d90q";
const POST_BODY: &str = "postbody8e3f12q";
const PG_URL_PASSWORD: &str = "pgurlpw4d2c1aq";
const PG_LITERAL: &str = "pglit6a1b3eq";
const MY_PASSWORD: &str = "mypw1f9e2dq";
const MY_LITERAL: &str = "mylit0c7a5bq";
const REDIS_PASSWORD: &str = "redispw5e8d3fq";
const REDIS_VALUE: &str = "redisval7b2f0eq";
const NATS_BODY: &str = "natsbody4c1d9eq";
const NATS_HEADER: &str = "natshdr8a2b6fq";
const ENV_SECRET: &str = "envsecret3d9a4cq";

const SECRETS: &[&str] = &[
    CURL_PASSWORD,
    BEARER,
    COOKIE,
    API_KEY,
    QUERY_TOKEN,
    POST_BODY,
    PG_URL_PASSWORD,
    PG_LITERAL,
    MY_PASSWORD,
    MY_LITERAL,
    REDIS_PASSWORD,
    REDIS_VALUE,
    NATS_BODY,
    NATS_HEADER,
    ENV_SECRET,
];

/// Non-secret parts of the same requests that must be exported.
const CONTROLS: &[&str] = &[
    "/probe-path",
    "probe_pg_column",
    "probe_my_column",
    "probe_redis_key",
    "probe.subject",
];

/// The servers, on free ports.
struct Servers {
    nginx: Nginx,
    pg: DbServer,
    mariadb: DbServer,
    redis: DbServer,
    nats_port: u16,
    _nats: wirelens_tests::Daemon,
}

impl Servers {
    fn start() -> Self {
        let nats_port = free_port();
        Servers {
            nginx: Nginx::start(free_port()),
            pg: DbServer::postgres(free_port()),
            mariadb: DbServer::mariadb(free_port()),
            redis: DbServer::redis(free_port()),
            nats_port,
            _nats: nats_server(nats_port),
        }
    }

    fn ports(&self) -> Vec<String> {
        [
            self.nginx.port,
            self.pg.port,
            self.mariadb.port,
            self.redis.port,
            self.nats_port,
        ]
        .iter()
        .map(u16::to_string)
        .collect()
    }
}

/// Runs `argv` with the environment secret set; waits for it.
fn client(argv: &[String]) -> ClientRun {
    ClientProcess::spawn(argv, &[("DB_PASSWORD", ENV_SECRET)]).wait()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Every client, each carrying its protocol's secrets; returns the client runs.
fn traffic(s: &Servers) -> Vec<ClientRun> {
    let mut runs = Vec::new();
    let base = format!("http://127.0.0.1:{}", s.nginx.port);
    runs.push(client(&args(&[
        "/usr/bin/curl",
        "-s",
        "-o",
        "/dev/null",
        "-u",
        &format!("alice:{CURL_PASSWORD}"),
        "-H",
        &format!("Authorization: Bearer {BEARER}"),
        "-H",
        &format!("Cookie: sid={COOKIE}"),
        "-H",
        &format!("X-Api-Key: {API_KEY}"),
        &format!("{base}/probe-path?q=cats&access_token={QUERY_TOKEN}"),
    ])));
    runs.push(client(&args(&[
        "/usr/bin/curl",
        "-s",
        "-o",
        "/dev/null",
        "--data-binary",
        &format!("password={POST_BODY}"),
        &format!("{base}/upload"),
    ])));
    runs.push(client(&args(&[
        &wirelens_tests::pg_bin("psql").display().to_string(),
        &format!(
            "postgresql://postgres:{PG_URL_PASSWORD}@127.0.0.1:{}/{}",
            s.pg.port,
            wirelens_tests::DB_NAME
        ),
        "-X",
        "-q",
        "-c",
        &format!("SELECT '{PG_LITERAL}' AS probe_pg_column"),
    ])));
    runs.push(client(&args(&[
        "/usr/bin/mariadb",
        "--no-defaults",
        "-h",
        "127.0.0.1",
        "-P",
        &s.mariadb.port.to_string(),
        "-u",
        "root",
        &format!("-p{MY_PASSWORD}"),
        "--skip-ssl",
        "-e",
        &format!("SELECT '{MY_LITERAL}' AS probe_my_column"),
    ])));
    runs.push(client(&args(&[
        "/usr/bin/redis-cli",
        "-h",
        "127.0.0.1",
        "-p",
        &s.redis.port.to_string(),
        "-a",
        REDIS_PASSWORD,
        "--no-auth-warning",
        "SET",
        "probe_redis_key",
        REDIS_VALUE,
    ])));
    let nats = format!(
        "import asyncio, nats\n\
         async def main():\n\
         \x20   nc = await nats.connect('nats://app:secret@127.0.0.1:{port}')\n\
         \x20   await nc.publish('probe.subject', b'{NATS_BODY}', headers={{'Authorization': '{NATS_HEADER}'}})\n\
         \x20   await nc.flush()\n\
         \x20   await nc.close()\n\
         asyncio.run(main())\n",
        port = s.nats_port
    );
    runs.push(client(&args(&[
        &python().display().to_string(),
        "-c",
        &nats,
    ])));
    for run in &runs {
        assert!(
            run.status.success() || run.exe_name == "mariadb" || run.exe_name == "redis-cli",
            "{} failed ({}): {}",
            run.command_line(),
            run.status,
            run.stderr
        );
    }
    runs
}

/// Whether every control shows in the exported spans: all the traffic has been exported.
fn all_controls(spans: &[Span]) -> bool {
    let text: String = spans
        .iter()
        .map(|s| format!("{} {:?} {:?}", s.name, s.attributes, s.resource))
        .collect();
    CONTROLS.iter().all(|c| text.contains(c))
}

/// Where each needle occurs in `hay`, named for the failure message.
fn hits<'a>(hay: &[u8], needles: &[&'a str]) -> Vec<&'a str> {
    needles
        .iter()
        .filter(|n| hay.windows(n.len()).any(|w| w == n.as_bytes()))
        .copied()
        .collect()
}

/// One round: the agent with `extra` arguments, the traffic, then the search.
fn round(name: &str, extra: &[&str]) -> (Vec<u8>, Vec<Span>) {
    let servers = Servers::start();
    let ports = servers.ports();
    let mut agent_args: Vec<&str> = extra.to_vec();
    for p in &ports {
        agent_args.extend(["--port", p.as_str()]);
    }
    let scenario = Scenario::start_with_env(name, &agent_args, &[("WIRELENS_LOG", "debug")]);
    let runs = traffic(&servers);
    let result = {
        let done = scenario.finish_when(all_controls, "db.client.operation.duration", 1);
        let mut everything = done.raw.clone();
        everything.extend_from_slice(done.output.stdout.as_bytes());
        everything.extend_from_slice(done.output.stderr.as_bytes());
        assert!(
            all_controls(&done.spans),
            "{name}: not every request was exported (controls {CONTROLS:?}):\n{}",
            done.diagnostics()
        );
        let found = hits(&everything, SECRETS);
        assert!(
            found.is_empty(),
            "{name}: secrets found in what the agent exported: {found:?}\nclients: {:?}\n{}",
            runs.iter().map(ClientRun::command_line).collect::<Vec<_>>(),
            done.diagnostics()
        );
        let controls = hits(&done.raw, CONTROLS);
        assert_eq!(
            controls.len(),
            CONTROLS.len(),
            "{name}: the raw OTLP bytes miss controls (found {controls:?})"
        );
        assert!(
            !done.output.stdout.is_empty(),
            "{name}: the live view printed nothing"
        );
        (everything, done.spans)
    };
    drop(servers);
    result
}

#[test]
fn no_secret_is_exported_by_default() {
    let (bytes, spans) = round("secrets_default", &["--output", "json"]);
    for span in &spans {
        assert!(
            !span.resource.contains_key("process.command_line"),
            "process.command_line exported by default: {:?}",
            span.resource
        );
    }
    // The executable still names every process.
    assert!(!hits(&bytes, &["process.executable.path"]).is_empty());
}

#[test]
fn redacted_command_lines_hold_no_secret() {
    let (_, spans) = round(
        "secrets_redacted_command_line",
        &["--output", "text", "--command-line", "redacted"],
    );
    let lines: Vec<&str> = spans
        .iter()
        .filter_map(|s| s.resource.get("process.command_line"))
        .filter_map(|v| v.as_str())
        .collect();
    for want in [
        "-pREDACTED",
        "-a REDACTED",
        "alice:REDACTED",
        "postgresql://REDACTED:REDACTED@127.0.0.1",
        "AS probe_pg_column",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(want)),
            "no exported command line holds {want:?}: {lines:#?}"
        );
    }
}
