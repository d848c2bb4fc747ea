#!/usr/bin/env python3
"""Writes REPORT.md (to stdout) from the logs check.sh left in OUT_DIR. Only what the logs say: a missing log is
reported as missing, never filled in."""
import json, os, platform, sys, time

out = sys.argv[1]


def read(name, default=None):
    p = os.path.join(out, name)
    return open(p, encoding="utf-8", errors="replace").read().strip() if os.path.exists(p) else default


def raw(ep):
    text = read(f"raw-{ep}.log")
    rows, sessions, errors, info = {}, {}, [], {}
    for line in (text or "").splitlines():
        f = line.split("|")
        if f[0] == "RAW" and len(f) == 8:
            rows[f[2]] = f
        elif f[0] == "SESSION" and len(f) == 7:
            sessions[f[2]] = f
        elif f[0] == "ERROR":
            errors.append(line)
        elif f[0] == "INFO" and len(f) >= 3:
            info[f[1]] = "|".join(f[2:])
    if text is not None and not rows and not errors:
        errors.append("no RAW line; log tail: " + " / ".join(text.splitlines()[-5:]))
    return text is not None, rows, sessions, errors, info


print("# GPU check report\n")
print(f"- when: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; host: {platform.node()} ({platform.machine()}, kernel {platform.release()})")
print(f"- GPU (nvidia-smi): {read('gpu.txt', 'not read')}")
info = raw("cuda")[4] or raw("cpu")[4]
print(f"- ONNX Runtime: {info.get('onnxruntime', '?')}; providers the build lists: {info.get('available_providers', '?')}; intra-op threads: {info.get('intra_op_threads', '?')}")
print(f"- bundle unpacked in: {read('unpack-seconds', 'reused or not timed')} s")
print("\n## CUDA libraries used\n")
print("```\n" + (read("cuda-libs.txt") or "not searched") + "\n```")
missing = [l for l in (read("ldd-cuda-provider.txt") or "").splitlines() if "not found" in l]
print(f"\n`ldd libonnxruntime_providers_cuda.so` with that LD_LIBRARY_PATH: {'all found' if not missing else 'MISSING ' + '; '.join(m.strip() for m in missing)}")

print("\n## Raw ONNX Runtime (bench/ServerlessInference.Bench.Gpu: RawOnnx.cs's scenarios, one session per model, preallocated host tensors)\n")
print("| provider | scenario | rows | runs/s | rows/s | p50 ms | p99 ms | session create ms | first run ms | nodes by provider (ORT profile) | max abs diff vs CPU |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
all_errors = []
for ep in ("cpu", "cuda"):
    present, rows, sessions, errors, _ = raw(ep)
    all_errors += [f"raw {ep}: {e}" for e in errors]
    if not present:
        all_errors.append(f"raw {ep}: no log")
    for key in ("mlp-b1", "mlp-b32", "resnet18-b1"):
        r, s = rows.get(key), sessions.get(key)
        if r is None and s is None:
            print(f"| {ep} | {key} | | | | | | | | did not run | |")
            continue
        rps = float(r[5]) if r else None
        rows_s = f"{rps * int(r[3]):,.0f}" if r else ""
        print(f"| {ep} | {key} | {r[3] if r else ''} | {r[5] if r else ''} | {rows_s} | {r[6] if r else ''} | {r[7] if r else ''} | "
              f"{s[3] if s else ''} | {s[4] if s else ''} | {s[5] if s else ''} | {s[6] if s and ep == 'cuda' else ''} |")

print("\n## One worker over Redis (services DevHost, folder model store, child-process worker; load.py over HTTP, JSON tensors)\n")
print("| asked (Inference:Onnx:ExecutionProvider) | worker's own log line | /status providers | first mlp-bench answer s | first resnet18 answer s |")
print("| --- | --- | --- | ---: | ---: |")
for ep in ("Cuda", "Cpu"):
    status = read(f"status-{ep}.json") or ""
    providers = next((l.split("|", 1)[1] for l in status.splitlines() if l.startswith("STATUS_PROVIDERS|")), "not read")
    print(f"| {ep} | {read(f'worker-provider-{ep}.txt', 'no log')} | {providers} | {read(f'first-{ep}.txt', '-')} | {read(f'first-resnet-{ep}.txt', '-')} |")
print("\n| asked | model | concurrency | answers/s | p50 ms | p99 ms | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for ep in ("Cuda", "Cpu"):
    for line in (read(f"load-{ep}.jsonl") or "").splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        print(f"| {ep} | {j['model']} | {j['concurrency']} | {j['per_s']} | {j['p50_ms']} | {j['p99_ms']} | {j['errors']}{(' ' + '; '.join(j['error_samples'])[:200]) if j['error_samples'] else ''} |")

print("\n## Errors\n")
errs = (read("errors.md") or "").splitlines() + [f"- {e}" for e in all_errors]
print("\n".join(dict.fromkeys(errs)) if errs else "none")
