#!/usr/bin/env bash
# bench/proxy-small.sh: one-run, side-by-side measurement of a small proxied
# response over keep-alive.
#
#   strait (1 worker, pinned to GATEWAY_CPU)  ->  upstream nginx (1 KiB body)
#   nginx  (1 worker, pinned to GATEWAY_CPU)  ->  the same upstream
#   direct (wrk straight to the upstream)
#
# wrk and the upstream are pinned to LOAD_CPU. The systems are measured in
# alternation (A B C A B C ...) for ROUNDS rounds inside one invocation, so
# that drift of the machine hits all of them alike. Reported per system: the
# median req/s, p50 and p99 latency (us) and CPU-seconds per 100k requests of
# the process under test (utime+stime from /proc/PID/stat of the process and
# its children, before/after each measured run), plus the per-round ratios
# strait/nginx. The same is written as JSON to bench/results/.
#
# Usage: bench/proxy-small.sh [--quick] [--rounds N] [--duration S]
#            [--warmup S] [--gateway-cpu N] [--load-cpu N] [--connections N]
#            [--systems "strait nginx direct"] [--runtime auto|io_uring|epoll]
#            [--no-build]
# Environment (flags win): GATEWAY_CPU=0 LOAD_CPU=1 ROUNDS=3 DURATION=10
#   WARMUP=2 CONNECTIONS=64 SYSTEMS="strait nginx direct" STRAIT_RUNTIME=auto
#   NO_BUILD=0 STRAIT_BIN=<path> KEEP_TMP=0
#   QUIET_MAX=10 QUIET_TIMEOUT=600: before each run, wait until the two cpus
#     use at most QUIET_MAX % of one cpu with the benchmark idle (0: no wait)
#   NOISE_MAX=10 RETRIES=3: repeat a run (up to RETRIES times) when busy time
#     on the two cpus not charged to the processes of the benchmark exceeds
#     NOISE_MAX % of one cpu (someone else's compile, say)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

GATEWAY_CPU=${GATEWAY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
SYSTEMS=${SYSTEMS:-"strait nginx direct"}
STRAIT_RUNTIME=${STRAIT_RUNTIME:-auto}
NO_BUILD=${NO_BUILD:-0}
KEEP_TMP=${KEEP_TMP:-0}
QUIET_MAX=${QUIET_MAX:-10}          # % of a cpu the idle machine may use before a run (0: do not wait)
QUIET_TIMEOUT=${QUIET_TIMEOUT:-600} # seconds to wait for that
NOISE_MAX=${NOISE_MAX:-10}          # % of a cpu of foreign load during a run before it is repeated
RETRIES=${RETRIES:-3}               # repeats of a spoiled run
BODY_BYTES=1024

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
die() { echo "proxy-small: error: $*" >&2; exit 1; }
log() { echo "proxy-small: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) ROUNDS=1; DURATION=3; WARMUP=1 ;;
        --rounds) ROUNDS=${2:?}; shift ;;
        --duration) DURATION=${2:?}; shift ;;
        --warmup) WARMUP=${2:?}; shift ;;
        --gateway-cpu) GATEWAY_CPU=${2:?}; shift ;;
        --load-cpu) LOAD_CPU=${2:?}; shift ;;
        --connections) CONNECTIONS=${2:?}; shift ;;
        --systems) SYSTEMS=${2:?}; shift ;;
        --runtime) STRAIT_RUNTIME=${2:?}; shift ;;
        --no-build) NO_BUILD=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done

for v in GATEWAY_CPU LOAD_CPU ROUNDS DURATION WARMUP CONNECTIONS QUIET_MAX QUIET_TIMEOUT NOISE_MAX RETRIES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[[ $ROUNDS -ge 1 && $DURATION -ge 1 ]] || die "ROUNDS and DURATION must be >= 1"
case "$STRAIT_RUNTIME" in auto|io_uring|epoll) ;; *) die "STRAIT_RUNTIME must be auto, io_uring or epoll" ;; esac
read -r -a SYS_LIST <<<"$SYSTEMS"
[[ ${#SYS_LIST[@]} -ge 1 ]] || die "SYSTEMS is empty"
for s in "${SYS_LIST[@]}"; do
    case "$s" in strait|nginx|direct) ;; *) die "unknown system '$s' (strait, nginx, direct)" ;; esac
done
want() { [[ " ${SYS_LIST[*]} " == *" $1 "* ]]; }

NCPU=$(nproc --all)
for v in GATEWAY_CPU LOAD_CPU; do
    [[ ${!v} -lt $NCPU ]] || die "$v=${!v} but this machine has $NCPU cpus"
done
[[ $GATEWAY_CPU -ne $LOAD_CPU ]] || log "warning: GATEWAY_CPU == LOAD_CPU; the proxy shares its cpu with wrk and the upstream"

# ---------------------------------------------------------------- tools
need_apt=()
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
for t in taskset curl; do command -v "$t" >/dev/null 2>&1 || die "$t not found"; done
if [[ ${#need_apt[@]} -gt 0 ]]; then
    log "installing ${need_apt[*]} with apt"
    [[ $EUID -eq 0 ]] || die "need root to apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx)
CLK_TCK=$(getconf CLK_TCK)

STRAIT_BIN=${STRAIT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/strait}
if want strait; then
    if [[ $NO_BUILD != 1 ]]; then
        log "building strait: cargo build --release -p strait"
        (cd "$ROOT" && cargo build --release -p strait) >&2 || die "cargo build failed (run with SYSTEMS=\"nginx direct\" to skip strait)"
    fi
    [[ -x $STRAIT_BIN ]] || die "strait binary not found at $STRAIT_BIN"
fi

# ---------------------------------------------------------------- processes
TMP=$(mktemp -d /tmp/strait-proxy-small.XXXXXX)
chmod 755 "$TMP"   # nginx workers run as an unprivileged user
PIDS=()            # every long-running process we started (nginx masters, strait)

kill_tree() {   # pid: TERM it and its children, wait, then KILL what is left
    local pid=$1 kids i
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    if [[ -n ${WRK_PID:-} ]]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill_tree "${PIDS[i]}"; done
    if [[ $KEEP_TMP == 1 || ( $rc -ne 0 && $rc -ne 130 && $rc -ne 143 ) ]]; then
        log "logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 - <<'EOF' 2>/dev/null && return 0
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
    done
    die "no free port found"
}

wait_http() {   # name url pid: until the URL answers 200 with the 1 KiB body
    local name=$1 url=$2 pid=$3 i size
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup (logs in $TMP)"
        size=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$url" 2>/dev/null || true)
        [[ $size == "200 $BODY_BYTES" ]] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 with $BODY_BYTES bytes at $url (last: '$size'; logs in $TMP)"
}

nginx_common() {   # dir
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {   # dir
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}

start_nginx() {   # name cpu conf-dir -> sets STARTED_PID
    local name=$1 cpu=$2 dir=$3
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        || die "nginx config for $name is invalid ($dir/nginx.conf)"
    taskset -c "$cpu" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        >"$dir/stdout.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

BODY=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x')

# upstream: 1 KiB fixed body, 1 worker, pinned to the load cpu
UP_PORT=$(free_port)
UP_DIR=$TMP/upstream; mkdir -p "$UP_DIR"
{
    nginx_common "$UP_DIR"
    echo "http {"
    nginx_http_common "$UP_DIR"
    cat <<EOF
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / {
            default_type text/plain;
            return 200 "$BODY";
        }
    }
}
EOF
} >"$UP_DIR/nginx.conf"
start_nginx upstream "$LOAD_CPU" "$UP_DIR"; UP_PID=$STARTED_PID
wait_http upstream "http://127.0.0.1:$UP_PORT/" "$UP_PID"

declare -A URL PID_OF
URL[direct]="http://127.0.0.1:$UP_PORT/"
PID_OF[direct]=$UP_PID

if want nginx; then
    NG_PORT=$(free_port)
    NG_DIR=$TMP/nginx; mkdir -p "$NG_DIR"
    {
        nginx_common "$NG_DIR"
        echo "http {"
        nginx_http_common "$NG_DIR"
        cat <<EOF
    upstream up {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 120s;
    }
    server {
        listen 127.0.0.1:$NG_PORT backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$NG_DIR/nginx.conf"
    start_nginx nginx "$GATEWAY_CPU" "$NG_DIR"
    PID_OF[nginx]=$STARTED_PID
    URL[nginx]="http://127.0.0.1:$NG_PORT/"
    wait_http nginx "${URL[nginx]}" "${PID_OF[nginx]}"
fi

if want strait; then
    ST_PORT=$(free_port)
    ST_DIR=$TMP/strait; mkdir -p "$ST_DIR"
    cat >"$ST_DIR/strait.yaml" <<EOF
workers: 1
runtime: $STRAIT_RUNTIME
admin: { listen: 127.0.0.1:0 }
listeners:
  - name: main
    listen: 127.0.0.1:$ST_PORT
upstreams:
  - name: up
    targets: ["127.0.0.1:$UP_PORT"]
    pool: { max_idle_per_target: 256 }
routes:
  - name: all
    upstream: up
EOF
    taskset -c "$GATEWAY_CPU" "$STRAIT_BIN" run -c "$ST_DIR/strait.yaml" \
        >"$ST_DIR/stdout.log" 2>"$ST_DIR/stderr.log" &
    PID_OF[strait]=$!
    PIDS+=("${PID_OF[strait]}")
    URL[strait]="http://127.0.0.1:$ST_PORT/"
    for ((i = 0; i < 300; i++)); do
        grep -q 'strait: ready' "$ST_DIR/stdout.log" 2>/dev/null && break
        kill -0 "${PID_OF[strait]}" 2>/dev/null || {
            cat "$ST_DIR/stdout.log" "$ST_DIR/stderr.log" >&2
            die "strait exited during startup"
        }
        sleep 0.1
    done
    grep -q 'strait: ready' "$ST_DIR/stdout.log" || {
        cat "$ST_DIR/stdout.log" "$ST_DIR/stderr.log" >&2
        die "strait did not print 'strait: ready' within 30s"
    }
    wait_http strait "${URL[strait]}" "${PID_OF[strait]}"
fi

# Every thread of a process under test must be allowed only its own cpu.
check_affinity() {   # name pid cpu
    local name=$1 pid=$2 cpu=$3 p t aff
    for p in "$pid" $(pgrep -P "$pid" || true); do
        for t in /proc/"$p"/task/*; do
            aff=$(taskset -cp "${t##*/}" 2>/dev/null | sed 's/.*: //') || continue
            [[ $aff == "$cpu" ]] || log "warning: $name thread ${t##*/} may run on cpus '$aff', not only $cpu"
        done
    done
}
check_affinity upstream "$UP_PID" "$LOAD_CPU"
for s in nginx strait; do
    want "$s" && check_affinity "$s" "${PID_OF[$s]}" "$GATEWAY_CPU"
done

# ---------------------------------------------------------------- measuring
cpu_ticks() {   # pid: utime+stime of it and its direct children, in ticks
    local total=0 p rest
    local -a f
    for p in "$1" $(pgrep -P "$1" || true); do
        [[ -r /proc/$p/stat ]] || continue
        rest=$(<"/proc/$p/stat")
        rest=${rest##*) }          # drop "pid (comm) "; fields now start at 3
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))   # fields 14 (utime) and 15 (stime)
    done
    echo "$total"
}

cpu_snap() {   # -> "gw_busy gw_steal gw_total load_busy load_steal load_total shell_children" in ticks
    {
        awk -v g="cpu$GATEWAY_CPU" -v l="cpu$LOAD_CPU" '
            # user nice system idle iowait irq softirq steal (guest time is already in user)
            $1 == g { gb = $2 + $3 + $4 + $7 + $8; gs = $9; gt = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
            $1 == l { lb = $2 + $3 + $4 + $7 + $8; ls = $9; lt = $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
            END { printf "%d %d %d %d %d %d ", gb, gs, gt, lb, ls, lt }' /proc/stat
        # cutime+cstime of this shell: the waited-for wrk processes
        local rest; rest=$(<"/proc/$$/stat"); rest=${rest##*) }
        local -a f; read -r -a f <<<"$rest"
        echo $((f[13] + f[14]))
    }
}

to_us() {   # "123.45us" | "1.2ms" | "1.00s" | "2m" -> microseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        m = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : (u == "h") ? 3.6e9 : -1
        if (m < 0) { print "NaN"; exit 1 }
        printf "%.1f", n * m }'
}

declare -A RPS P50 P99 REQS CPU UPCPU ERRS GWBUSY LDBUSY STEAL OTHER ATTEMPTS

WRK_PID=
run_wrk() {   # url seconds outfile (in the background, so that a signal is handled at once)
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency "$1" >"$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$3" >&2; die "wrk failed against $1"; }
    WRK_PID=
}

# Before a run: wait (up to QUIET_TIMEOUT s) until the two cpus are nearly idle,
# so that a compile or test run of someone else does not land in a measurement.
wait_quiet() {
    [[ $QUIET_MAX -gt 0 ]] || return 0
    local waited=0 a b busy
    while :; do
        a=$(cpu_snap); sleep 1; b=$(cpu_snap)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
            t = y[3] - x[3]; if (t <= 0) t = 1
            printf "%.0f", 100 * (y[1] - x[1] + y[4] - x[4]) / t }')
        [[ $busy -le $QUIET_MAX ]] && return 0
        [[ $waited -eq 0 ]] && log "machine busy (${busy}% of a cpu on cpus $GATEWAY_CPU,$LOAD_CPU with the benchmark idle); waiting up to ${QUIET_TIMEOUT}s"
        waited=$((waited + 1))
        if [[ $waited -ge $QUIET_TIMEOUT ]]; then
            log "warning: still busy (${busy}%) after ${QUIET_TIMEOUT}s; measuring anyway"
            return 0
        fi
    done
}

measure() {   # system round: one measured run, repeated while foreign load spoils it
    local attempt
    for ((attempt = 1; ; attempt++)); do
        wait_quiet
        measure_once "$1" "$2"
        ATTEMPTS[$1,$2]=$attempt
        [[ ${OTHER[$1,$2]} -le $NOISE_MAX ]] && return 0
        if [[ $attempt -gt $RETRIES ]]; then
            log "warning: $1 round $2 kept ${OTHER[$1,$2]}% foreign cpu load after $attempt attempts; keeping it"
            return 0
        fi
        log "$1 round $2: ${OTHER[$1,$2]}% foreign cpu load during the run; repeating it"
    done
}

measure_once() {   # system round
    local sys=$1 r=$2 out=$TMP/wrk-$1-$2.txt pid c0 c1 u0 u1 s0 s1 req rps
    pid=${PID_OF[$sys]}
    kill -0 "$pid" 2>/dev/null || die "$sys (pid $pid) is gone"
    run_wrk "${URL[$sys]}" "$WARMUP" "$TMP/warmup-$sys-$r.txt"
    c0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$UP_PID")
    s0=$(cpu_snap)
    run_wrk "${URL[$sys]}" "$DURATION" "$out"
    c1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$UP_PID")
    s1=$(cpu_snap)
    kill -0 "$pid" 2>/dev/null || die "$sys (pid $pid) died during the run"

    req=$(awk '/requests in/ { print $1; exit }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
    [[ -n $req && -n $rps && $req -gt 0 ]] || { cat "$out" >&2; die "could not parse wrk output for $sys"; }
    local k="$sys,$r"
    REQS[$k]=$req
    RPS[$k]=$rps
    P50[$k]=$(to_us "$(awk '$1 == "50%" { print $2; exit }' "$out")")
    P99[$k]=$(to_us "$(awk '$1 == "99%" { print $2; exit }' "$out")")
    ERRS[$k]=$(awk '/Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
                    /Non-2xx or 3xx responses:/ { e += $NF } END { print e + 0 }' "$out")
    CPU[$k]=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.4f", (b - a) / t / n * 100000 }')
    UPCPU[$k]=$(awk -v a="$u0" -v b="$u1" -v t="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.4f", (b - a) / t / n * 100000 }')
    # busy % of each cpu, steal % and "other" % (busy ticks on the two cpus
    # not charged to the process under test, the upstream or wrk), all in
    # percent of one cpu over the run
    local gb lb st ot
    read -r gb lb st ot < <(awk -v a="$s0" -v b="$s1" \
        -v dt="$((c1 - c0))" -v du="$(( pid == UP_PID ? 0 : u1 - u0 ))" 'BEGIN {
        split(a, x, " "); split(b, y, " "); for (i = 1; i <= 7; i++) d[i] = y[i] - x[i]
        t = d[3] > 0 ? d[3] : 1
        printf "%.0f %.0f %.0f %.0f\n", 100 * d[1] / t, 100 * d[4] / t, 100 * (d[2] + d[5]) / t,
            100 * (d[1] + d[4] - dt - du - d[7]) / t }')
    GWBUSY[$k]=$gb; LDBUSY[$k]=$lb; STEAL[$k]=$st; OTHER[$k]=$ot
    printf 'round %d %-6s %9.1f req/s  p50 %7.1f us  p99 %7.1f us  cpu %.3f s/100k  upstream %.3f  busy gw %3s%% load %3s%%  steal %2s%%  other %3s%%  err %s\n' \
        "$r" "$sys" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${CPU[$k]}" "${UPCPU[$k]}" "${GWBUSY[$k]}" "${LDBUSY[$k]}" "${STEAL[$k]}" "${OTHER[$k]}" "${ERRS[$k]}"
    [[ ${ERRS[$k]} -eq 0 ]] || log "warning: $sys round $r had ${ERRS[$k]} socket errors / non-2xx responses (see $out)"
}

median() {   # values... -> median
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "NaN"; exit }
        if (NR % 2) printf "%.4f", v[(NR + 1) / 2]; else printf "%.4f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
col() {   # array-name system -> the per-round values
    local -n arr=$1
    local r
    for ((r = 1; r <= ROUNDS; r++)); do echo "${arr[$2,$r]}"; done
}

STRAIT_VERSION=n/a
want strait && STRAIT_VERSION=$("$STRAIT_BIN" --version 2>/dev/null | head -n1 || echo unknown)
MODEL=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
KERNEL=$(uname -r)
WRK_VER=$(wrk -v 2>&1 | head -n1 | awk '{ print $2 }' || true)
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's|.*nginx/||')
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

echo "proxy-small: ${BODY_BYTES} B upstream body over keep-alive; wrk -t1 -c$CONNECTIONS -d${DURATION}s (warm-up ${WARMUP}s) x $ROUNDS rounds"
echo "systems: ${SYS_LIST[*]} | gateway cpu $GATEWAY_CPU | load cpu $LOAD_CPU (wrk + upstream) | strait runtime $STRAIT_RUNTIME"
echo "machine: $NCPU cpus, $MODEL, kernel $KERNEL | nginx $NGINX_VER | wrk $WRK_VER | strait $STRAIT_VERSION"
echo

for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SYS_LIST[@]}"; do measure "$s" "$r"; done
done

# ---------------------------------------------------------------- report
declare -A M_RPS M_P50 M_P99 M_CPU M_UPCPU
for s in "${SYS_LIST[@]}"; do
    mapfile -t v < <(col RPS "$s");   M_RPS[$s]=$(median "${v[@]}")
    mapfile -t v < <(col P50 "$s");   M_P50[$s]=$(median "${v[@]}")
    mapfile -t v < <(col P99 "$s");   M_P99[$s]=$(median "${v[@]}")
    mapfile -t v < <(col CPU "$s");   M_CPU[$s]=$(median "${v[@]}")
    mapfile -t v < <(col UPCPU "$s"); M_UPCPU[$s]=$(median "${v[@]}")
done

echo
printf '%-8s %12s %10s %10s %14s %-18s %16s\n' system "req/s(med)" "p50 us" "p99 us" "CPU-s/100k" "(cpu of)" "upstream CPU-s"
for s in "${SYS_LIST[@]}"; do
    case "$s" in
        direct) of="upstream nginx" ;;
        nginx) of="nginx master+wkr" ;;
        strait) of="strait process" ;;
    esac
    printf '%-8s %12.1f %10.1f %10.1f %14.3f %-18s %16.3f\n' "$s" "${M_RPS[$s]}" "${M_P50[$s]}" "${M_P99[$s]}" "${M_CPU[$s]}" "$of" "${M_UPCPU[$s]}"
done

RATIOS_JSON="[]"
if want strait && want nginx; then
    echo
    printf '%-8s %18s %18s\n' round "strait/nginx req/s" "strait/nginx CPU"
    RATIOS_JSON="["
    for ((r = 1; r <= ROUNDS; r++)); do
        rr=$(awk -v a="${RPS[strait,$r]}" -v b="${RPS[nginx,$r]}" 'BEGIN { printf "%.3f", a / b }')
        cr=$(awk -v a="${CPU[strait,$r]}" -v b="${CPU[nginx,$r]}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "null" }')
        printf '%-8s %18s %18s\n' "$r" "$rr" "$cr"
        [[ $r -gt 1 ]] && RATIOS_JSON+=","
        RATIOS_JSON+="{\"round\":$r,\"rps\":$rr,\"cpu_per_100k\":$cr}"
    done
    RATIOS_JSON+="]"
    mapfile -t v < <(for ((r = 1; r <= ROUNDS; r++)); do awk -v a="${RPS[strait,$r]}" -v b="${RPS[nginx,$r]}" 'BEGIN { print a / b }'; done)
    printf '%-8s %18.3f' median "$(median "${v[@]}")"
    mapfile -t v < <(for ((r = 1; r <= ROUNDS; r++)); do awk -v a="${CPU[strait,$r]}" -v b="${CPU[nginx,$r]}" 'BEGIN { if (b > 0) print a / b }'; done)
    if [[ ${#v[@]} -gt 0 ]]; then printf ' %18.3f\n' "$(median "${v[@]}")"; else printf ' %18s\n' n/a; fi
fi

for s in "${SYS_LIST[@]}"; do
    for ((r = 1; r <= ROUNDS; r++)); do
        if [[ ${LDBUSY[$s,$r]} -ge 95 ]]; then
            echo
            echo "note: the load cpu was >=95% busy in some runs (wrk + upstream share it); the gateway may not be the bottleneck there."
            break 2
        fi
    done
done

# ---------------------------------------------------------------- JSON
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
mkdir -p "$ROOT/bench/results"
OUT_JSON=$ROOT/bench/results/proxy-small-$(date -u +%Y%m%dT%H%M%SZ).json
{
    printf '{\n'
    printf '  "benchmark": "proxy-small",\n'
    printf '  "started_utc": %s,\n' "$(json_str "$STARTED")"
    printf '  "machine": {"nproc": %d, "model": %s, "kernel": %s},\n' "$NCPU" "$(json_str "$MODEL")" "$(json_str "$KERNEL")"
    printf '  "versions": {"nginx": %s, "wrk": %s, "strait": %s},\n' "$(json_str "$NGINX_VER")" "$(json_str "$WRK_VER")" "$(json_str "$STRAIT_VERSION")"
    printf '  "settings": {"gateway_cpu": %d, "load_cpu": %d, "rounds": %d, "duration_s": %d, "warmup_s": %d, "connections": %d, "wrk_threads": 1, "body_bytes": %d, "strait_runtime": %s, "systems": [%s]},\n' \
        "$GATEWAY_CPU" "$LOAD_CPU" "$ROUNDS" "$DURATION" "$WARMUP" "$CONNECTIONS" "$BODY_BYTES" "$(json_str "$STRAIT_RUNTIME")" \
        "$(printf '"%s",' "${SYS_LIST[@]}" | sed 's/,$//')"
    printf '  "cpu_measured": {"strait": "strait process (+children)", "nginx": "nginx master + worker", "direct": "upstream nginx master + worker"},\n'
    printf '  "summary": {\n'
    first=1
    for s in "${SYS_LIST[@]}"; do
        [[ $first == 1 ]] || printf ',\n'; first=0
        printf '    "%s": {"rps_median": %s, "p50_us_median": %s, "p99_us_median": %s, "cpu_s_per_100k_median": %s, "upstream_cpu_s_per_100k_median": %s}' \
            "$s" "${M_RPS[$s]}" "${M_P50[$s]}" "${M_P99[$s]}" "${M_CPU[$s]}" "${M_UPCPU[$s]}"
    done
    printf '\n  },\n'
    printf '  "ratios_strait_over_nginx": %s,\n' "$RATIOS_JSON"
    printf '  "runs": [\n'
    first=1
    for ((r = 1; r <= ROUNDS; r++)); do
        for s in "${SYS_LIST[@]}"; do
            k="$s,$r"
            [[ $first == 1 ]] || printf ',\n'; first=0
            printf '    {"round": %d, "system": "%s", "requests": %s, "rps": %s, "p50_us": %s, "p99_us": %s, "cpu_s_per_100k": %s, "upstream_cpu_s_per_100k": %s, "gateway_cpu_busy_pct": %s, "load_cpu_busy_pct": %s, "steal_pct": %s, "other_pct": %s, "attempts": %s, "errors": %s}' \
                "$r" "$s" "${REQS[$k]}" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${CPU[$k]}" "${UPCPU[$k]}" "${GWBUSY[$k]}" "${LDBUSY[$k]}" "${STEAL[$k]}" "${OTHER[$k]}" "${ATTEMPTS[$k]}" "${ERRS[$k]}"
        done
    done
    printf '\n  ]\n}\n'
} >"$OUT_JSON"
echo
echo "json: ${OUT_JSON#"$ROOT"/}"
