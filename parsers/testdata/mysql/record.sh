#!/usr/bin/env bash
# Records the MySQL/MariaDB fixtures in this folder from real traffic: a throwaway MariaDB
# server on 127.0.0.1:13306 (own datadir, --skip-grant-tables), driven by the mariadb client,
# mariadb-admin, PyMySQL and mysql-connector-python, captured with tshark on lo, then split by
# ../http1/extract.py into the bytes each side sent (<case>.client.bin, <case>.server.bin) and
# when (<case>.timeline); see README.md. Needs root (capture on lo), mariadb-server,
# mariadb-client, tshark and a Python with PyMySQL and mysql-connector-python ($PYTHON,
# default /opt/wirelens-venv/bin/python). Re-running changes thread ids, scrambles and
# timings, so the baselines (<case>.expected) must then be regenerated:
# WIRELENS_BLESS=1 cargo test -p wirelens-parsers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=13306
python=${PYTHON:-/opt/wirelens-venv/bin/python}
work=$(mktemp -d)
chmod 755 "$work"
server_pid=""
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null || true
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work/capture.pcap" "$KEEP_PCAP"; fi
    rm -rf "$work"
}
trap cleanup EXIT

mariadb-install-db --no-defaults --datadir="$work/data" --user=root --auth-root-authentication-method=normal >"$work/install.log" 2>&1
mariadbd --no-defaults --datadir="$work/data" --port=$port --bind-address=127.0.0.1 \
    --socket="$work/s" --user=root --skip-grant-tables --skip-log-bin --pid-file="$work/pid" \
    >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 50); do
    mariadb-admin --no-defaults --socket="$work/s" ping >/dev/null 2>&1 && break
    sleep 0.2
done

# Schema and data over the socket: not captured.
mariadb --no-defaults --socket="$work/s" <<'SQL'
CREATE DATABASE shop;
USE shop;
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(8,2), blob_col LONGBLOB);
INSERT INTO items (id, name, price) VALUES (1, 'kettle', 24.50), (2, 'teapot', 18.00),
    (3, 'mug', 6.25), (4, 'saucer', 3.10), (5, 'spoon', 1.99);
DELIMITER //
CREATE PROCEDURE two_sets() BEGIN SELECT id FROM items WHERE id < 3; SELECT COUNT(*) FROM items; END //
DELIMITER ;
SQL

tshark -i lo -f "tcp port $port" -F pcap -w "$work/capture.pcap" -q 2>"$work/tshark.log" &
tshark_pid=$!
sleep 2

cli=(mariadb --no-defaults --skip-ssl -h 127.0.0.1 -P $port -u root)
# Each command below is one TCP connection; the order is the case order given to extract.py.
# 1 cli_session: COM_INIT_DB, a result set of five rows, an unknown table (1146/42S02), an
#   UPDATE (affected rows), a procedure with two result sets, COM_QUIT.
"${cli[@]}" --force <<'SQL' || true
USE shop;
SELECT id, name, price FROM items ORDER BY id;
SELECT * FROM nope;
UPDATE items SET price = price + 1 WHERE id <= 2;
CALL two_sets();
SELECT 1 FROM DUAL WHERE 1 = 0;
SQL
# 2 large_row: a ~100 KB value in one row (one 100 KB packet).
"${cli[@]}" shop -e "SELECT REPEAT('x', 100000) AS big, 1 AS one"
# 3 ping: mariadb-admin ping (COM_PING).
mariadb-admin --no-defaults --skip-ssl -h 127.0.0.1 -P $port -u root ping
# 4 pymysql_queries: PyMySQL, database given at connect (CONNECT_WITH_DB), client-side
#   parameters (COM_QUERY), an INSERT, a USE statement, COM_PING, commit.
"$python" - "$port" <<'PY'
import sys, pymysql
conn = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user="root", database="shop")
with conn.cursor() as cur:
    cur.execute("SELECT name, price FROM items WHERE id = %s", (3,))
    cur.fetchall()
    cur.execute("INSERT INTO items (id, name, price) VALUES (%s, %s, %s)", (6, "fork's", 2.5))
    cur.execute("USE mysql")
    cur.execute("SELECT COUNT(*) FROM shop.items")
    cur.fetchall()
conn.ping(reconnect=False)
conn.commit()
conn.close()
PY
# 5 connector_prepared: mysql-connector-python with a prepared cursor: COM_STMT_PREPARE,
#   COM_STMT_EXECUTE (binary rows) twice, COM_STMT_CLOSE, then a text query.
"$python" - "$port" <<'PY'
import sys, mysql.connector
conn = mysql.connector.connect(host="127.0.0.1", port=int(sys.argv[1]), user="root",
                               database="shop", ssl_disabled=True, use_pure=True)
cur = conn.cursor(prepared=True)
cur.execute("SELECT id, name, price FROM items WHERE id >= ?", (2,))
cur.fetchall()
cur.execute("SELECT id, name, price FROM items WHERE id >= ?", (4,))
cur.fetchall()
cur.close()
cur = conn.cursor()
cur.execute("SELECT name FROM items WHERE id = 1")
cur.fetchall()
cur.close()
conn.close()
PY

sleep 2
kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
python3 "$here/../http1/extract.py" "$work/capture.pcap" "$here" \
    cli_session large_row ping pymysql_queries connector_prepared
echo "server: $(mariadbd --version)"; echo "client: $(mariadb --version)"
"$python" -c 'import pymysql, mysql.connector, sys; print("python", sys.version.split()[0], "PyMySQL", pymysql.__version__, "mysql-connector-python", mysql.connector.__version__)'
echo "tshark: $(tshark --version | head -1)"
