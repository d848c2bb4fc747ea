#!/usr/bin/env python3
"""Closed-loop OIP v2 load against the gateway, standard library only (the GPU machine has python3, no SDK).

  load.py wait   URL MODEL INPUT SHAPE TIMEOUT_S [LOG]  first 200 answer (prints seconds waited) or exit 1; stops
                                                        early when LOG shows the worker host failing to start
  load.py run    URL MODEL INPUT SHAPE CONCURRENCY SECONDS   prints one JSON line: answers/s, p50/p99 ms, errors
  load.py status URL                                    prints /status and the execution providers it names
SHAPE is comma-separated (1,512). Inputs are the same deterministic floats as the C# bench (seed 1).
"""
import http.client, json, math, sys, threading, time, urllib.parse


def floats(count, seed=1):
    state = (seed * 2654435761 + 1) & 0xFFFFFFFF
    out = []
    for _ in range(count):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out.append((state >> 8) / float(1 << 24))
    return out


def body(input_name, shape):
    n = 1
    for d in shape:
        n *= d
    return json.dumps({"inputs": [{"name": input_name, "shape": shape, "datatype": "FP32", "data": floats(n)}]}).encode()


def post(conn, path, payload):
    conn.request("POST", path, payload, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def main():
    mode, url = sys.argv[1], sys.argv[2]
    u = urllib.parse.urlparse(url)
    if mode == "status":
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("GET", "/status")
        r = c.getresponse()
        text = r.read().decode()
        print(text)
        found = set()

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if "provider" in k.lower() and isinstance(v, (str, list)):
                        found.update(v if isinstance(v, list) else [v])
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
        try:
            walk(json.loads(text))
        except ValueError:
            pass
        print("STATUS_PROVIDERS|" + ",".join(sorted(str(f) for f in found)))
        return 0
    model, input_name = sys.argv[3], sys.argv[4]
    shape = [int(s) for s in sys.argv[5].split(",")]
    path = f"/v2/models/{model}/infer"
    payload = body(input_name, shape)
    if mode == "wait":
        timeout = float(sys.argv[6])
        log = sys.argv[7] if len(sys.argv) > 7 else None
        start = time.monotonic()
        last = ""
        while time.monotonic() - start < timeout:
            if log:
                with open(log, encoding="utf-8", errors="replace") as f:
                    failure = next((l.strip() for l in f if "cannot run models here" in l or "Hosting failed to start" in l), None)
                if failure:
                    print(f"the worker failed to start: {failure[:1500]}")
                    return 1
            try:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                status, data = post(c, path, payload)
                c.close()
                if status == 200:
                    print(f"{time.monotonic() - start:.2f}")
                    return 0
                last = f"{status} {data[:300]!r}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.5)
        print(f"no 200 from {path} within {timeout} s; last: {last}")
        return 1
    concurrency, seconds = int(sys.argv[6]), float(sys.argv[7])
    warm = min(1.0, seconds / 4)
    begin = time.monotonic() + warm
    end = begin + seconds
    lat, errors, samples, lock = [], [0], [], threading.Lock()

    def worker():
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        while True:
            t = time.monotonic()
            if t >= end:
                break
            try:
                status, data = post(c, path, payload)
                ok = status == 200
                err = None if ok else f"{status} {data[:200]!r}"
            except OSError as e:
                ok, err = False, repr(e)
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            done = time.monotonic()
            with lock:
                if not ok:
                    errors[0] += 1
                    if len(samples) < 3:
                        samples.append(err)
                elif t >= begin and done <= end:
                    lat.append(done - t)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, max(0, math.ceil(p * len(lat)) - 1))] * 1000, 3) if lat else None
    print(json.dumps({"model": model, "concurrency": concurrency, "answers": len(lat), "per_s": round(len(lat) / seconds, 1),
                      "p50_ms": pct(0.5), "p99_ms": pct(0.99), "errors": errors[0], "error_samples": samples}))
    return 0 if errors[0] == 0 and lat else 1


if __name__ == "__main__":
    sys.exit(main())
