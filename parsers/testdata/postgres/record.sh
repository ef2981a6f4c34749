#!/usr/bin/env bash
# Records the PostgreSQL fixtures in this folder from real traffic: a throwaway PostgreSQL 15
# cluster on 127.0.0.1:15432 (initdb into a temporary directory, SCRAM passwords over TCP),
# driven by psql and by Python psycopg 3, captured with tshark on lo, then split into the
# bytes each side sent (<case>.client.bin, <case>.server.bin) and when (<case>.timeline) by
# ../http1/extract.py; see README.md. Needs root (capture on lo, and to run initdb as the
# `postgres` user), postgresql-15, psql, tshark, python3. PY=path/to/python with psycopg
# installed (default: a venv made in the temporary directory with `pip install psycopg[binary]`).
# Re-running changes timings, SCRAM nonces and backend keys, so the baselines
# (<case>.expected) must then be regenerated: WIRELENS_BLESS=1 cargo test -p wirelens-parsers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=15432
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
chmod 755 "$work"
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    su postgres -s /bin/sh -c "$bindir/pg_ctl -D $work/data -m immediate stop" >/dev/null 2>&1 || true
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work/cap/capture.pcap" "$KEEP_PCAP"; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${PY:-}" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q 'psycopg[binary]'
    PY="$work/venv/bin/python"
fi

mkdir "$work/data" "$work/cap"; chown postgres "$work" "$work/data"
echo wirelens > "$work/pw"; chmod 644 "$work/pw"
su postgres -s /bin/sh -c "$bindir/initdb -D $work/data -U postgres --pwfile=$work/pw -A scram-sha-256 -E UTF8 --locale=C" >/dev/null
su postgres -s /bin/sh -c "$bindir/pg_ctl -D $work/data -l $work/pg.log -w -o '-p $port -k /tmp -c listen_addresses=127.0.0.1 -c ssl=off' start" >/dev/null
export PGPASSWORD=wirelens
conn="host=127.0.0.1 port=$port user=postgres application_name=wirelens-fixture"
psql -X -q -d "$conn dbname=postgres sslmode=disable gssencmode=disable" -c 'CREATE DATABASE wirelens'
db="$conn dbname=wirelens gssencmode=disable"
psql -X -q -d "$db sslmode=disable" -c 'CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, score numeric)'

tshark -i lo -f "tcp port $port" -F pcap -w "$work/cap/capture.pcap" -q 2>"$work/cap/tshark.log" &
tshark_pid=$!
sleep 2

# Each command below is one TCP connection; the order is the case order given to extract.py.
# 1 simple_queries: psql sends each statement as one simple Query: INSERT, SELECT, UPDATE,
#   DELETE, a syntax error (42601) and a unique violation (23505).
psql -X -q -d "$db sslmode=disable" -f - >/dev/null 2>&1 <<'SQL' || true
INSERT INTO users VALUES (1, 'ada', 3.5), (2, 'bob', 1e3), (3, 'cy', NULL);
SELECT id, name FROM users WHERE id > 0 ORDER BY id;
UPDATE users SET score = score + 1 WHERE name <> 'x';
SELEC broken;
INSERT INTO users VALUES (1, 'dup', 0);
DELETE FROM users WHERE id = 3;
SQL
# 2 multi_statement: one Query string holding a transaction of four statements.
psql -X -q -d "$db sslmode=disable" -c "BEGIN; INSERT INTO users VALUES (10, 'multi', 1); UPDATE users SET name = 'm' WHERE id = 10; COMMIT" >/dev/null
# 3 ssl_refused: sslmode=prefer sends SSLRequest, the server (ssl=off) answers 'N', then the
#   startup goes on in clear.
psql -X -q -d "$db sslmode=prefer" -c 'SELECT count(*) FROM users' >/dev/null
# 4 extended: psycopg 3, server-side parameters: unnamed statements, a named prepared
#   statement run three times, executemany, and a unique violation.
# 5 pipeline: psycopg pipeline mode: several Parse/Bind/Execute before one Sync, with an
#   error in the middle (the rest of that batch is skipped by the server), then another batch.
"$PY" - "$port" <<'PY'
import sys
import psycopg
port = sys.argv[1]
dsn = f"host=127.0.0.1 port={port} user=postgres password=wirelens dbname=wirelens sslmode=disable gssencmode=disable application_name=wirelens-psycopg"
with psycopg.connect(dsn, autocommit=True) as conn:
    conn.execute("SELECT name FROM users WHERE id = %s", (1,)).fetchall()
    for i in range(3):
        conn.execute("SELECT id, name, score FROM public.users WHERE id = %s", (i,), prepare=True).fetchall()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO users (id, name, score) VALUES (%s, %s, %s)",
                        [(100 + i, f"many{i}", i * 1.5) for i in range(4)])
    try:
        conn.execute("INSERT INTO users (id, name) VALUES (%s, %s)", (100, "dup"))
    except psycopg.errors.UniqueViolation:
        pass
with psycopg.connect(dsn, autocommit=True) as conn:
    try:
        with conn.pipeline():
            conn.execute("INSERT INTO users (id, name) VALUES (%s, %s)", (200, "p1"))
            conn.execute("UPDATE users SET score = %s WHERE id = %s", (7, 200))
            conn.execute("INSERT INTO users (id, name) VALUES (%s, %s)", (200, "p1 again"))
            conn.execute("DELETE FROM users WHERE id = %s", (200,))
            conn.execute("SELECT count(*) FROM users")
    except psycopg.errors.UniqueViolation:
        pass
    with conn.pipeline():
        cur1 = conn.execute("SELECT id FROM users WHERE id < %s", (50,))
        cur2 = conn.execute("DELETE FROM users WHERE id >= %s", (100,))
        cur3 = conn.execute("SELECT 1")
    cur1.fetchall()
PY
# 6 copy: COPY FROM STDIN (psql sends the rows as CopyData) and COPY TO STDOUT.
psql -X -q -d "$db sslmode=disable" -f - >/dev/null <<'SQL'
COPY users (id, name, score) FROM STDIN;
300	copy-a	1.5
301	copy-b	\N
302	copy-c	2
\.
COPY users TO STDOUT;
SQL
# 7 large_result: one SELECT answered by 5000 DataRows (about 250 KB), for throughput.
psql -X -q -d "$db sslmode=disable" -c 'SELECT g, md5(g::text) FROM generate_series(1, 5000) g' >/dev/null

sleep 2
kill "$tshark_pid" || { cat "$work/cap/tshark.log"; exit 1; }; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
python3 "$here/../http1/extract.py" "$work/cap/capture.pcap" "$here" \
    simple_queries multi_statement ssl_refused extended pipeline copy large_result
echo "server: $("$bindir/postgres" --version)"; echo "psql: $(psql --version)"
echo "psycopg: $("$PY" -c 'import psycopg; print(psycopg.__version__, psycopg.pq.__impl__, psycopg.pq.version())')"
echo "tshark: $(tshark --version | head -1)"
