# Sourced by the bench scripts: a one-worker nginx serving a small page on 127.0.0.1, and
# /tiny, a `return 200` location (three bytes of body).
# bench_nginx WORK PORT: writes WORK/nginx.conf, starts nginx (pid in WORK/nginx.pid) and pins
# its worker to CPU 0, so that the scheduler does not move it between runs.
bench_nginx() {
  local work=$1 port=$2 w
  mkdir -p "$work/html" "$work/logs"
  # mktemp -d makes a 0700 directory: the worker (nobody or www-data) must read the page, or
  # every answer is a 403.
  chmod 755 "$work" "$work/html"
  printf 'hello from the wirelens benchmark\n' > "$work/html/index.html"
  cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$port;
    root $work/html;
    location = /tiny { return 200 "ok\n"; }
  }
}
CONF
  /usr/sbin/nginx -p "$work" -c "$work/nginx.conf"
  sleep 0.5
  for w in $(pgrep -f "nginx: worker" -P "$(cat "$work/nginx.pid")"); do taskset -pc 0 "$w" >/dev/null; done
}
