#!/usr/bin/env bash
# The CUDA check, run on the GPU machine (Linux x86-64, NVIDIA driver, no .NET SDK, no network). It needs bash,
# coreutils, tar, python3 (standard library only) and, optionally, xz (python3's lzma decodes otherwise).
#
#   check.sh PIECES_DIR [WORK_DIR] [OUT_DIR]
#
# PIECES_DIR holds what bench/gpu/pack.sh made: bundle.tar.NN pieces and bundle.sha256. Each piece and the joined
# bundle are checked against bundle.sha256, then unpacked into WORK_DIR (default /root/si/work; a second run reuses
# it). CUDA 13 libraries are looked for (see find_cuda_libs below; CUDA_LIB_DIRS=dir:dir puts folders first); the
# report says which folder gave each. Then, with the carried .NET runtime:
#   1. the raw ONNX Runtime scenarios (mlp-b1, mlp-b32, resnet18-b1) on the CPU and on CUDA, each in its own process;
#   2. a services-profile DevHost over a carried redis-server and a folder model store, whose child-process worker runs
#      with Inference:Onnx:ExecutionProvider=Cuda, then again with Cpu; answers are timed with load.py, and the
#      provider the worker used is read from its own log line and from the gateway's /status.
# Writes OUT_DIR/REPORT.md (default WORK_DIR/../out) and the logs beside it. A failing step is reported and the
# next one still runs; the exit code is 0 only when every step passed.
set -uo pipefail

pieces=$(cd "${1:?usage: check.sh PIECES_DIR [WORK_DIR] [OUT_DIR]}" && pwd)
work=${2:-/root/si/work}
out=${3:-$(dirname "$work")/out}
seconds=${SECONDS_PER_SCENARIO:-5}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" "$out"
out=$(cd "$out" && pwd)
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/check.log" >&2; }
status=0
fail() { log "FAILED: $*"; echo "- FAILED: $*" >>"$out/errors.md"; status=1; }
: >"$out/errors.md"

# ---- 1. join and verify -------------------------------------------------------------------------------------------
unpack() {
    (cd "$pieces" && sha256sum -c --quiet bundle.sha256 --ignore-missing) || { fail "a piece does not match bundle.sha256"; return 1; }
    local expected missing=0
    while read -r _ name; do
        [[ $name == bundle.tar ]] && continue
        [[ -f $pieces/$name ]] || { fail "piece $name is missing from $pieces"; missing=1; }
    done <"$pieces/bundle.sha256"
    ((missing)) && return 1
    expected=$(awk '$2 == "bundle.tar" {print $1}' "$pieces/bundle.sha256")
    local joined="$work/bundle.tar"
    cat $(awk '$2 != "bundle.tar" {print $2}' "$pieces/bundle.sha256" | sort | sed "s|^|$pieces/|") >"$joined"
    [[ $(sha256sum "$joined" | cut -d' ' -f1) == "$expected" ]] || { fail "the joined bundle does not match bundle.sha256"; return 1; }
    log "bundle joined and verified ($(du -m "$joined" | cut -f1) MiB, sha256 $expected)"
    tar -C "$work" -xf "$joined" && rm -f "$joined"
    local x
    for x in "$work"/*.xz; do
        if command -v xz >/dev/null; then xz -d -T0 -f "$x"; else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[1][:-3], "wb"), 1 << 24)' "$x" && rm "$x"; fi
    done
    (cd "$work" && sha256sum -c --quiet SHA256SUMS) || { fail "an unpacked file does not match SHA256SUMS"; return 1; }
    tar -C "$work" -xf "$work/base.tar" && rm -f "$work/base.tar"
    mv "$work/libonnxruntime_providers_cuda.so" "$work/si/app/"
    touch "$work/.unpacked"
    log "unpacked into $work"
}
if [[ -f $work/.unpacked ]]; then log "reusing $work"; else
    t0=$(date +%s%N); unpack || { log "cannot go on without the bundle"; exit 1; }
    t1=$(date +%s%N); echo "$(( (t1 - t0) / 1000000000 )).$(( (t1 - t0) / 100000000 % 10 ))" >"$out/unpack-seconds"
fi
app=$work/si/app
export DOTNET_ROOT=$work/si/dotnet PATH=$work/si/dotnet:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# ---- 2. CUDA libraries ---------------------------------------------------------------------------------------------
# What libonnxruntime_providers_cuda.so 1.31 needs (ldd) and loads (cuDNN 9, cuFFT) besides the driver's libcuda.so.1.
needed=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9 libcuda.so.1)
find_cuda_libs() {
    local dirs=() d py
    IFS=: read -ra extra <<<"${CUDA_LIB_DIRS:-}"; dirs+=("${extra[@]}")
    IFS=: read -ra ldp <<<"${LD_LIBRARY_PATH:-}"; dirs+=("${ldp[@]}")
    while read -r d; do dirs+=("$d"); done < <(ldconfig -p 2>/dev/null | awk -F'=> ' '/libcu|libcudnn/ {print $2}' | xargs -r -n1 dirname | sort -u)
    for d in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do dirs+=("$d"); done
    for py in python3 /opt/*/.venv/bin/python3; do
        command -v "$py" >/dev/null || continue
        while read -r d; do for x in "$d"/nvidia/*/lib; do dirs+=("$x"); done; done < <("$py" -c 'import site,sys; print("\n".join(site.getsitepackages()+[site.getusersitepackages()]))' 2>/dev/null)
    done
    local lib found libdirs=()
    : >"$out/cuda-libs.txt"
    for lib in "${needed[@]}"; do
        found=""
        for d in "${dirs[@]}"; do [[ -n $d && -e $d/$lib ]] && { found=$d; break; }; done
        if [[ -n $found ]]; then
            echo "$lib $found/$lib" >>"$out/cuda-libs.txt"
            [[ " ${libdirs[*]} " == *" $found "* ]] || libdirs+=("$found")
        else
            echo "$lib NOT FOUND" >>"$out/cuda-libs.txt"; fail "$lib not found (searched ${#dirs[@]} folders: CUDA_LIB_DIRS, LD_LIBRARY_PATH, ldconfig, /usr/local/cuda*, python site-packages/nvidia/*/lib)"
        fi
    done
    local joined; joined=$(IFS=:; echo "${libdirs[*]}")
    export LD_LIBRARY_PATH="$joined${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "CUDA library folders: $joined"
}
find_cuda_libs
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"; } >"$out/gpu.txt" 2>&1
log "GPU: $(cat "$out/gpu.txt")"
ldd "$app/libonnxruntime_providers_cuda.so" >"$out/ldd-cuda-provider.txt" 2>&1
grep -q "not found" "$out/ldd-cuda-provider.txt" && fail "ldd libonnxruntime_providers_cuda.so: $(grep 'not found' "$out/ldd-cuda-provider.txt" | tr -s ' \t\n' ' ')"
# ---- 3. raw ONNX Runtime -------------------------------------------------------------------------------------------
for ep in cpu cuda; do
    log "raw ONNX Runtime on $ep ($seconds s per scenario)"
    timeout 300 dotnet "$app/ServerlessInference.Bench.Gpu.dll" $ep "$seconds" >"$out/raw-$ep.log" 2>&1 || fail "raw $ep exited $? (see raw-$ep.log): $(grep -m1 -E '^ERROR|Exception' "$out/raw-$ep.log" | cut -c1-600)"
done
# ---- 4. one worker over Redis ---------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
mkdir -p "$work/redis-data"
LD_LIBRARY_PATH=$work/si/redis/lib "$work/si/redis/redis-server" --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work/redis-data" --protected-mode no >"$out/redis.log" 2>&1 &
redis_pid=$!
cleanup() { [[ -n ${host_pid:-} ]] && kill "$host_pid" 2>/dev/null; kill "$redis_pid" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 50); do python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$rport),1); s.send(b'PING\r\n'); sys.exit(0 if s.recv(16).startswith(b'+PONG') else 1)" 2>/dev/null && break; sleep 0.2; done
kill -0 $redis_pid 2>/dev/null && log "redis-server on port $rport ($(LD_LIBRARY_PATH=$work/si/redis/lib "$work/si/redis/redis-server" --version | cut -d' ' -f3))" || fail "redis-server did not start: $(tail -3 "$out/redis.log")"
for ep in Cuda Cpu; do
    hport=$(free_port); url=http://127.0.0.1:$hport
    log "services DevHost with Inference:Onnx:ExecutionProvider=$ep on $url"
    rm -rf "$work/models" "$work/weights"
    Inference__Redis__ConnectionString=127.0.0.1:$rport Inference__Redis__KeyPrefix="gpu-$ep:" \
    Inference__ModelStore__Provider=Folder Inference__ModelStore__Root="$work/models" Inference__WarmPool__CacheDirectory="$work/weights" \
    Inference__Onnx__ExecutionProvider=$ep Inference__Scaling__MinReplicas=1 Inference__Scaling__MaxReplicas=1 \
    Inference__Worker__MaxBatchSize=32 Inference__Worker__MaxBatchDelay=00:00:00 ASPNETCORE_URLS=$url \
        dotnet "$app/ServerlessInference.DevHost.dll" --profile services >"$out/devhost-$ep.log" 2>&1 &
    host_pid=$!
    if first=$(python3 "$here/load.py" wait "$url" mlp-bench input 1,512 120 "$out/devhost-$ep.log"); then
        log "first mlp-bench answer after $first s"
        echo "$first" >"$out/first-$ep.txt"
        python3 "$here/load.py" wait "$url" resnet18 Input247 1,3,224,224 60 >"$out/first-resnet-$ep.txt" || fail "$ep: resnet18: $(cat "$out/first-resnet-$ep.txt")"
        for spec in "mlp-bench input 1,512 1" "mlp-bench input 1,512 32" "resnet18 Input247 1,3,224,224 4"; do
            set -- $spec
            python3 "$here/load.py" run "$url" $1 $2 $3 $4 "$seconds" >>"$out/load-$ep.jsonl" || fail "$ep: $1 c=$4: $(tail -1 "$out/load-$ep.jsonl")"
        done
        python3 "$here/load.py" status "$url" >"$out/status-$ep.json" 2>&1
    else
        fail "DevHost ExecutionProvider=$ep: $first"
    fi
    kill "$host_pid" 2>/dev/null; wait "$host_pid" 2>/dev/null; host_pid=
    grep -m1 -o -E "Execution provider: .*|Inference:Onnx:ExecutionProvider is .* cannot run models here.*" "$out/devhost-$ep.log" | cut -c1-600 >"$out/worker-provider-$ep.txt" \
        || echo "(no 'Execution provider' line in the log)" >"$out/worker-provider-$ep.txt"
    log "worker ($ep asked): $(cat "$out/worker-provider-$ep.txt")"
done
# ---- 5. report -----------------------------------------------------------------------------------------------------
python3 "$here/report.py" "$out" >"$out/REPORT.md" || fail "report.py failed"
log "report: $out/REPORT.md (exit $status)"
exit $status
