// The operator's live view. Polls /status (JSON) and /metrics (Prometheus text) of this page's origin every 1-2 s,
// keeps a ring of samples over the last minutes, and draws plain SVG. No framework, no CDN, nothing inline (the page's
// Content-Security-Policy allows this origin only).
'use strict';

(() => {
  const HISTORY_MS = 5 * 60 * 1000; // the samples kept, and the longest time axis
  const RATE_MS = 5 * 1000; // jobs/s and tokens/s: the increase over the last 5 s
  const QUANTILE_MS = 30 * 1000; // p50/p99: the histogram's increase over the last 30 s (Prometheus' histogram_quantile of a rate)
  const FETCH_TIMEOUT_MS = 5000;
  const KEY_STORAGE = 'serverless-inference.dashboard.key';
  const SVG = 'http://www.w3.org/2000/svg';

  // ---- Prometheus text format (version 0.0.4) ----

  // Parses the exposition text into Map(name -> [{ labels, value }]). Comments, HELP and TYPE lines are skipped;
  // label values are unescaped (\\, \", \n); +Inf, -Inf and NaN are numbers.
  function parsePrometheus(text) {
    const metrics = new Map();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      let i = 0;
      while (i < line.length && /[A-Za-z0-9_:]/.test(line[i])) i++;
      const name = line.slice(0, i);
      if (name === '') throw new Error(`metrics: no metric name in line '${line}'`);
      const labels = {};
      if (line[i] === '{') {
        i++;
        for (;;) {
          while (line[i] === ' ' || line[i] === ',') i++;
          if (line[i] === '}') { i++; break; }
          const start = i;
          while (i < line.length && line[i] !== '=') i++;
          const label = line.slice(start, i).trim();
          if (line[i + 1] !== '"') throw new Error(`metrics: label '${label}' of ${name} has no quoted value`);
          i += 2;
          let value = '';
          while (i < line.length && line[i] !== '"') {
            if (line[i] === '\\') {
              const next = line[i + 1];
              value += next === 'n' ? '\n' : next;
              i += 2;
            } else {
              value += line[i++];
            }
          }
          if (i >= line.length) throw new Error(`metrics: unterminated label value in '${line}'`);
          i++;
          labels[label] = value;
        }
      }
      const fields = line.slice(i).trim().split(/\s+/);
      const value = parseNumber(fields[0]);
      if (!metrics.has(name)) metrics.set(name, []);
      metrics.get(name).push({ labels, value });
    }
    return metrics;
  }

  function parseNumber(text) {
    if (text === '+Inf' || text === 'Inf') return Infinity;
    if (text === '-Inf') return -Infinity;
    if (text === 'NaN') return NaN;
    const value = Number(text);
    if (text === undefined || text === '' || Number.isNaN(value)) throw new Error(`metrics: '${text}' is not a number`);
    return value;
  }

  // The q-quantile of a histogram given as cumulative buckets [{ le, count }] (le ascending, the last +Inf), as
  // Prometheus' histogram_quantile computes it: linear within the bucket that holds the rank, the lower bound of the
  // first bucket 0, and the highest finite bound when the rank falls in the +Inf bucket. null when it holds nothing.
  function histogramQuantile(q, buckets) {
    if (buckets.length === 0) return null;
    const total = buckets[buckets.length - 1].count;
    if (!(total > 0)) return null;
    const rank = q * total;
    let lower = 0;
    let below = 0;
    for (let b = 0; b < buckets.length; b++) {
      const { le, count } = buckets[b];
      if (count >= rank) {
        if (le === Infinity) return b > 0 ? buckets[b - 1].le : null;
        if (count === below) return le;
        return lower + (le - lower) * ((rank - below) / (count - below));
      }
      lower = le;
      below = count;
    }
    return buckets[buckets.length - 1].le;
  }

  // Histograms of one metric family grouped by label set without 'le': Map(key -> { labels, buckets }).
  function histograms(metrics, family) {
    const groups = new Map();
    for (const { labels, value } of metrics.get(family + '_bucket') || []) {
      const { le, ...rest } = labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      if (!groups.has(key)) groups.set(key, { labels: rest, buckets: [] });
      groups.get(key).buckets.push({ le: parseNumber(le), count: value });
    }
    for (const group of groups.values()) group.buckets.sort((a, b) => a.le - b.le);
    return groups;
  }

  // What one histogram gained from 'before' to 'after' (a restarted process starts again from 0: then all of 'after').
  function bucketIncrease(after, before) {
    if (!before || before.length !== after.length) return after;
    const out = after.map((bucket, i) => ({ le: bucket.le, count: bucket.count - before[i].count }));
    return out.some(b => b.count < 0) ? after : out;
  }

  function counterIncrease(after, before) {
    return before === undefined || after < before ? after : after - before;
  }

  // ---- one sample: what the page keeps of each poll ----

  function summarize(metrics) {
    const sample = { requests: new Map(), tokens: new Map(), histograms: {} };
    for (const { labels, value } of metrics.get('inference_requests_total') || []) {
      sample.requests.set(`${labels.model}\u0000${labels.outcome}`, value);
    }
    for (const { labels, value } of metrics.get('inference_generated_tokens_total') || []) {
      sample.tokens.set(labels.model, value);
    }
    for (const family of ['inference_queue_time_seconds', 'inference_compute_time_seconds',
      'inference_time_to_first_token_seconds', 'inference_batch_size']) {
      const byModel = new Map();
      for (const { labels, buckets } of histograms(metrics, family).values()) byModel.set(labels.model ?? '', buckets);
      sample.histograms[family] = byModel;
    }
    return sample;
  }

  // The latest sample at least 'age' ms older than samples[index] (or the oldest one).
  function baseline(samples, index, age) {
    const t = samples[index].t - age;
    let j = index;
    while (j > 0 && samples[j].t > t) j--;
    while (j > 0 && !samples[j].metrics) j--;
    return j === index ? null : samples[j];
  }

  // ---- state ----

  const state = {
    samples: [],
    interval: 2000,
    timer: null,
    loop: 0,
    metricsAvailable: true,
    polls: 0,
    key: sessionStorage.getItem(KEY_STORAGE) || '',
  };

  function dataUrl(path) {
    const url = new URL(path, document.baseURI);
    // The Functions app guards /status with a function key: a `code` in the page's own address goes along.
    const code = new URLSearchParams(location.search).get('code');
    if (code) url.searchParams.set('code', code);
    return url;
  }

  async function fetchData(path) {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    try {
      const headers = state.key ? { Authorization: `Bearer ${state.key}` } : {};
      return await fetch(dataUrl(path), { headers, cache: 'no-store', signal: controller.signal });
    } finally {
      clearTimeout(timeout);
    }
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      // OIP errors are {"error": "..."}; OpenAI's are {"error": {"message": "..."}}.
      return typeof body.error === 'string' ? body.error : body.error?.message ?? JSON.stringify(body);
    } catch {
      return response.statusText;
    }
  }

  async function authProblem(response, path) {
    if (response.status === 401) {
      return `${path} answered 401: this host has API keys. Enter an admin key above (${await errorText(response)}).`;
    }
    if (response.status === 403) {
      return `${path} answered 403: this key is not an admin key; the dashboard needs one (${await errorText(response)}).`;
    }
    return null;
  }

  async function poll() {
    const t = Date.now();
    let problem = null;
    let status = null;
    let metrics = null;
    try {
      const [statusResponse, metricsResponse] = await Promise.all([
        fetchData('status'),
        state.metricsAvailable ? fetchData('metrics') : Promise.resolve(null),
      ]);
      problem = await authProblem(statusResponse, '/status');
      if (!problem && !statusResponse.ok) {
        problem = `/status answered ${statusResponse.status}: ${await errorText(statusResponse)}`;
      }
      if (!problem) status = await statusResponse.json();
      if (metricsResponse) {
        const metricsProblem = await authProblem(metricsResponse, '/metrics');
        if (metricsResponse.status === 404) {
          // The Functions app exports metrics over OTLP and has no /metrics: the charts from /status still draw.
          state.metricsAvailable = false;
          showNote('This host serves no /metrics (the Azure Functions app exports its metrics over OTLP): jobs/s, batch sizes, latencies and tokens are not drawn here.');
        } else if (metricsProblem) {
          problem = problem || metricsProblem;
        } else if (!metricsResponse.ok) {
          problem = problem || `/metrics answered ${metricsResponse.status}: ${await errorText(metricsResponse)}`;
        } else {
          metrics = summarize(parsePrometheus(await metricsResponse.text()));
        }
      }
    } catch (error) {
      problem = error.name === 'AbortError'
        ? `the gateway did not answer within ${FETCH_TIMEOUT_MS / 1000} s`
        : `cannot reach the gateway: ${error.message}`;
    }

    showAlert(problem);
    if (status) {
      state.samples.push({ t, status, metrics });
      while (state.samples.length > 2 && state.samples[0].t < t - HISTORY_MS) state.samples.shift();
      render(t);
    }
    state.polls++;
    document.body.dataset.polls = String(state.polls);
    document.getElementById('freshness').textContent = status
      ? `updated ${new Date(t).toLocaleTimeString()} · every ${state.interval / 1000} s · ${state.samples.length} samples`
      : 'no data';
  }

  // One polling loop at a time: a new key or interval starts a new loop, and the old one stops at its next turn.
  function schedule() {
    clearTimeout(state.timer);
    const loop = ++state.loop;
    const started = Date.now();
    poll().finally(() => {
      if (loop === state.loop) state.timer = setTimeout(schedule, Math.max(0, state.interval - (Date.now() - started)));
    });
  }

  function showAlert(text) {
    const alert = document.getElementById('alert');
    alert.hidden = !text;
    alert.textContent = text || '';
  }

  function showNote(text) {
    const note = document.getElementById('note');
    note.hidden = false;
    note.textContent = text;
  }

  // ---- series over the kept samples ----

  function series(pick) {
    return state.samples.map(s => [s.t, pick(s)]);
  }

  function rateSeries(kind) {
    // kind: 'requests' (by outcome) or 'tokens' (by model). Map(name -> points)
    const out = new Map();
    state.samples.forEach((sample, index) => {
      if (!sample.metrics) return;
      const before = baseline(state.samples, index, RATE_MS);
      if (!before?.metrics) return;
      const seconds = (sample.t - before.t) / 1000;
      const sums = new Map();
      for (const [key, value] of sample.metrics[kind]) {
        const name = kind === 'requests' ? key.split('\u0000')[1] : key;
        const gained = counterIncrease(value, before.metrics[kind].get(key));
        sums.set(name, (sums.get(name) || 0) + gained / seconds);
      }
      for (const [name, rate] of sums) {
        if (!out.has(name)) out.set(name, []);
        out.get(name).push([sample.t, rate]);
      }
    });
    return out;
  }

  function windowBuckets(family, index, age) {
    const sample = state.samples[index];
    const before = baseline(state.samples, index, age);
    const out = new Map();
    if (!sample.metrics || !before?.metrics) return out;
    for (const [model, buckets] of sample.metrics.histograms[family]) {
      out.set(model, bucketIncrease(buckets, before.metrics.histograms[family].get(model)));
    }
    return out;
  }

  function quantileSeries(family) {
    const out = new Map();
    state.samples.forEach((sample, index) => {
      for (const [model, buckets] of windowBuckets(family, index, QUANTILE_MS)) {
        for (const q of [0.5, 0.99]) {
          const name = `${model} p${q * 100}`;
          if (!out.has(name)) out.set(name, []);
          out.get(name).push([sample.t, histogramQuantile(q, buckets)]);
        }
      }
    });
    return out;
  }

  function latestQuantiles(family) {
    const last = state.samples.length - 1;
    const out = new Map();
    if (last < 0) return out;
    for (const [model, buckets] of windowBuckets(family, last, QUANTILE_MS)) {
      out.set(model, [histogramQuantile(0.5, buckets), histogramQuantile(0.99, buckets)]);
    }
    return out;
  }

  // ---- drawing ----

  function el(name, attributes = {}, ...children) {
    const node = name.startsWith('svg:') ? document.createElementNS(SVG, name.slice(4)) : document.createElement(name);
    for (const [key, value] of Object.entries(attributes)) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * magnitude) return step * magnitude;
    }
    return 10 * magnitude;
  }

  // Gridlines at round values: 1 and 2 in quarters, 2.5, 5 and 10 in fifths.
  function gridDivisions(max) {
    const mantissa = max / 10 ** Math.floor(Math.log10(max));
    return Math.abs(mantissa - 1) < 1e-9 || Math.abs(mantissa - 2) < 1e-9 ? 4 : 5;
  }

  // The time axis: the samples kept (at least a minute, at most HISTORY_MS), so a new page fills up as it watches.
  function visibleSpan(now) {
    const first = state.samples.length > 0 ? state.samples[0].t : now;
    return Math.min(HISTORY_MS, Math.max(60000, now - first));
  }

  function formatNumber(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return '—';
    if (value === 0) return '0';
    const abs = Math.abs(value);
    if (abs >= 1000) return value.toFixed(0);
    if (abs >= 10) return value.toFixed(1).replace(/\.0$/, '');
    return value.toPrecision(2).replace(/\.?0+$/, '');
  }

  function formatSeconds(value) {
    if (value === null || value === undefined) return '—';
    if (value < 1) return `${formatNumber(value * 1000)} ms`;
    return `${formatNumber(value)} s`;
  }

  function formatBytes(bytes) {
    if (!(bytes > 0)) return '0 B';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    const power = Math.min(units.length - 1, Math.floor(Math.log(bytes) / Math.log(1024)));
    return `${formatNumber(bytes / 1024 ** power)} ${units[power]}`;
  }

  // A line chart: one path per series over the kept window; a legend with each series' latest value. Each path
  // carries data-series, data-last and data-max, and the SVG an aria-label with the latest values.
  function lineChart(figure, { id, title, lines, format = formatNumber, now }) {
    const width = 480;
    const height = 180;
    const left = 52;
    const right = 10;
    const top = 10;
    const bottom = 22;
    const span = visibleSpan(now);
    const start = now - span;
    let max = 0;
    for (const points of lines.values()) {
      for (const [, v] of points) if (v !== null && Number.isFinite(v)) max = Math.max(max, v);
    }
    const yMax = niceMax(max);
    const x = t => left + ((t - start) / span) * (width - left - right);
    const y = v => top + (1 - v / yMax) * (height - top - bottom);

    const legend = el('ul', { class: 'legend' });
    const summary = [];
    const svg = el('svg:svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-chart': id });
    const divisions = gridDivisions(yMax);
    for (let g = 0; g <= divisions; g++) {
      const v = (yMax * g) / divisions;
      svg.append(el('svg:line', { class: 'grid', x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      svg.append(el('svg:text', { class: 'axis', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
    }
    const step = [10000, 15000, 30000, 60000].find(s => span / s <= 6) ?? 60000;
    for (let ago = 0; ago <= span; ago += step) {
      const label = ago === 0 ? 'now' : step >= 60000 ? `-${ago / 60000} min` : `-${ago / 1000} s`;
      svg.append(el('svg:text', { class: 'axis', x: x(now - ago), y: height - 6, 'text-anchor': ago === 0 ? 'end' : 'middle' }, label));
    }
    let index = 0;
    for (const [name, points] of lines) {
      let d = '';
      let pen = false;
      let last = null;
      let seriesMax = null;
      for (const [t, v] of points) {
        if (v === null || !Number.isFinite(v) || t < start) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
        last = v;
        seriesMax = seriesMax === null ? v : Math.max(seriesMax, v);
      }
      const color = `c${index % 8}`;
      svg.append(el('svg:path', { class: `line ${color}`, d: d || 'M0,0', 'data-series': name, 'data-last': last ?? '', 'data-max': seriesMax ?? '', 'data-empty': d === '' ? 'true' : 'false' }));
      const lastPoint = points.length > 0 ? points[points.length - 1] : null;
      if (lastPoint && lastPoint[1] !== null && Number.isFinite(lastPoint[1]) && d !== '') {
        svg.append(el('svg:circle', { class: `dot ${color}`, cx: x(lastPoint[0]), cy: y(lastPoint[1]), r: 2.5 }));
      }
      legend.append(el('li', {}, el('span', { class: `swatch ${color}`, 'aria-hidden': 'true' }), `${name}: `, el('strong', {}, format(last))));
      summary.push(`${name} ${format(last)}`);
      index++;
    }
    if (lines.size === 0) {
      svg.append(el('svg:text', { class: 'empty', x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'no data yet'));
    }
    svg.setAttribute('aria-label', `${title}: ${summary.length ? summary.join(', ') : 'no data yet'}`);
    figure.replaceChildren(el('figcaption', {}, title), svg, legend);
  }

  // Batch sizes: how many engine calls of each size over the kept window (the histogram's increase), as bars.
  function batchChart(figure) {
    const last = state.samples.length - 1;
    const totals = new Map();
    if (last >= 0) {
      for (const buckets of windowBuckets('inference_batch_size', last, HISTORY_MS).values()) {
        let below = 0;
        let lower = 0;
        for (const { le, count } of buckets) {
          const label = le === Infinity ? `>${lower}` : le === lower + 1 ? `${le}` : `${lower + 1}–${le}`;
          totals.set(label, (totals.get(label) || 0) + (count - below));
          below = count;
          lower = le;
        }
      }
    }
    const width = 480;
    const height = 180;
    const left = 52;
    const bottom = 22;
    const top = 10;
    const entries = [...totals];
    const max = niceMax(Math.max(0, ...entries.map(([, c]) => c)));
    const svg = el('svg:svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-chart': 'batch-size' });
    const divisions = gridDivisions(max);
    for (let g = 0; g <= divisions; g++) {
      const v = (max * g) / divisions;
      const yv = top + (1 - v / max) * (height - top - bottom);
      svg.append(el('svg:line', { class: 'grid', x1: left, x2: width - 10, y1: yv, y2: yv }));
      svg.append(el('svg:text', { class: 'axis', x: left - 6, y: yv + 4, 'text-anchor': 'end' }, formatNumber(v)));
    }
    const slot = (width - left - 10) / Math.max(1, entries.length);
    entries.forEach(([label, count], i) => {
      const h = (count / max) * (height - top - bottom);
      svg.append(el('svg:rect', { class: 'bar c0', x: left + i * slot + slot * 0.15, y: height - bottom - h, width: slot * 0.7, height: h, 'data-bucket': label, 'data-count': count }));
      svg.append(el('svg:text', { class: 'axis', x: left + i * slot + slot / 2, y: height - 6, 'text-anchor': 'middle' }, label));
    });
    const calls = entries.reduce((sum, [, c]) => sum + c, 0);
    if (calls === 0) svg.append(el('svg:text', { class: 'empty', x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'no batches yet'));
    const summary = entries.filter(([, c]) => c > 0).map(([label, c]) => `size ${label}: ${c}`);
    svg.setAttribute('aria-label', `Batch sizes over the last five minutes: ${summary.length ? summary.join(', ') : 'no batches yet'}`);
    figure.replaceChildren(el('figcaption', {}, 'Batch sizes (engine calls, last 5 min)'), svg,
      el('p', { class: 'legend' }, `${calls} engine calls`));
  }

  function table(container, caption, headers, rows, empty) {
    if (rows.length === 0) {
      container.replaceChildren(el('p', { class: 'empty' }, empty));
      return;
    }
    const head = el('tr', {}, ...headers.map(h => el('th', { scope: 'col' }, h)));
    const body = rows.map(cells => el('tr', {}, ...cells.map(c => el('td', {}, c))));
    container.replaceChildren(el('table', {}, el('caption', {}, caption), el('thead', {}, head), el('tbody', {}, ...body)));
  }

  function age(iso, now) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return '—';
    const seconds = Math.max(0, (now - then) / 1000);
    return seconds < 90 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds / 60)} min`;
  }

  function scalar(value) {
    if (value === null || value === undefined) return '—';
    if (typeof value === 'object') {
      return Array.isArray(value)
        ? value.map(v => (typeof v === 'object' && v !== null ? Object.values(v).join(' ') : String(v))).join(', ')
        : Object.entries(value).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
    }
    return String(value);
  }

  function render(now) {
    const latest = state.samples[state.samples.length - 1].status;
    const queue = (latest.queue) ? latest.queue : {};
    lineChart(document.getElementById('chart-queue'), {
      id: 'queue-depth', title: 'Queue depth (jobs)', now,
      lines: new Map([
        ['queued', series(s => s.status.queue?.queued ?? null)],
        ['in flight', series(s => s.status.queue?.in_flight ?? null)],
      ]),
    });
    lineChart(document.getElementById('chart-workers'), {
      id: 'workers', title: 'Workers', now,
      lines: new Map([
        ['desired', series(s => s.status.scaling_decisions?.[0]?.desired ?? null)],
        ['running', series(s => (s.status.workers || []).filter(w => w.state === 'running').length)],
      ]),
    });
    const withMetrics = state.metricsAvailable;
    if (withMetrics) {
      lineChart(document.getElementById('chart-jobs'), {
        id: 'jobs-per-second', title: 'Jobs per second by outcome', now, lines: rateSeries('requests'),
      });
      batchChart(document.getElementById('chart-batch'));
      lineChart(document.getElementById('chart-queue-time'), {
        id: 'queue-time', title: 'Queue time p50 / p99 (last 30 s)', now, format: formatSeconds,
        lines: quantileSeries('inference_queue_time_seconds'),
      });
      lineChart(document.getElementById('chart-compute-time'), {
        id: 'compute-time', title: 'Compute time per batch p50 / p99 (last 30 s)', now, format: formatSeconds,
        lines: quantileSeries('inference_compute_time_seconds'),
      });
      const tokens = rateSeries('tokens');
      const ttft = quantileSeries('inference_time_to_first_token_seconds');
      const tokensFigure = document.getElementById('chart-tokens');
      const ttftFigure = document.getElementById('chart-ttft');
      tokensFigure.hidden = tokens.size === 0;
      ttftFigure.hidden = ttft.size === 0;
      if (tokens.size > 0) lineChart(tokensFigure, { id: 'tokens-per-second', title: 'Generated tokens per second', now, lines: tokens });
      if (ttft.size > 0) lineChart(ttftFigure, { id: 'time-to-first-token', title: 'Time to first token p50 / p99 (last 30 s)', now, format: formatSeconds, lines: ttft });
    }
    for (const id of ['chart-jobs', 'chart-batch', 'chart-queue-time', 'chart-compute-time']) {
      document.getElementById(id).hidden = !withMetrics;
    }

    table(document.getElementById('workers'), `${(latest.workers || []).length} workers; queue: ${queue.queued ?? 0} queued, ${queue.in_flight ?? 0} in flight`,
      ['worker', 'host', 'state', 'execution provider', 'warm models', 'in flight', 'jobs done', 'memory', 'heartbeat age'],
      (latest.workers || []).map(w => [
        w.id, w.host ?? '—', w.state ?? '—', w.execution_provider ?? '—',
        (w.warm_models || []).map(m => `${m.model}@${m.version} (${formatBytes(m.bytes)})`).join(', ') || 'none',
        String(w.in_flight ?? 0), String(w.jobs_completed ?? 0),
        `${formatBytes(w.memory_used_bytes)} of ${formatBytes(w.memory_budget_bytes)}`,
        age(w.last_heartbeat, now),
      ]),
      'No workers: the scaler starts them when jobs arrive (and stops them at zero after the idle window).');

    renderModels(latest);

    table(document.getElementById('decisions'), 'Newest first',
      ['at', 'workers', 'queued', 'in flight', 'reason'],
      (latest.scaling_decisions || []).slice(0, 15).map(d => [
        new Date(d.at).toLocaleTimeString(), `${d.current} → ${d.desired}`, String(d.queued), String(d.in_flight), d.reason,
      ]),
      latest.scaling_decisions ? 'No scaling decision yet.' : 'This host runs no scaler (no scaling decisions in /status).');
  }

  function renderModels(latest) {
    const container = document.getElementById('models');
    const parts = [];
    // Latency per model from /metrics.
    const queueTime = latestQuantiles('inference_queue_time_seconds');
    const computeTime = latestQuantiles('inference_compute_time_seconds');
    const ttft = latestQuantiles('inference_time_to_first_token_seconds');
    const tokens = rateSeries('tokens');
    const names = [...new Set([...queueTime.keys(), ...computeTime.keys(), ...ttft.keys(), ...tokens.keys()])].sort();
    if (names.length > 0) {
      const block = el('div');
      table(block, 'Latency over the last 30 s (from /metrics)',
        ['model', 'queue p50', 'queue p99', 'compute p50', 'compute p99', 'tokens/s', 'first token p50', 'first token p99'],
        names.map(name => {
          const q = queueTime.get(name) || [null, null];
          const c = computeTime.get(name) || [null, null];
          const f = ttft.get(name);
          const rate = tokens.get(name);
          return [name, formatSeconds(q[0]), formatSeconds(q[1]), formatSeconds(c[0]), formatSeconds(c[1]),
            rate ? formatNumber(rate[rate.length - 1][1]) : '—', f ? formatSeconds(f[0]) : '—', f ? formatSeconds(f[1]) : '—'];
        }), '');
      parts.push(block);
    }
    // Per-model entries of /status when the host reports them: every scalar field becomes a column.
    const models = Array.isArray(latest.models)
      ? latest.models
      : latest.models && typeof latest.models === 'object'
        ? Object.entries(latest.models).map(([name, v]) => ({ model: name, ...(typeof v === 'object' && v !== null ? v : { value: v }) }))
        : null;
    if (models && models.length > 0) {
      const columns = [...new Set(models.flatMap(m => Object.keys(m)))];
      const block = el('div');
      table(block, 'Per model (from /status)', columns.map(c => c.replaceAll('_', ' ')), models.map(m => columns.map(c => scalar(m[c]))), '');
      parts.push(block);
    }
    const pool = latest.warm_pool;
    if (pool && (pool.models || []).length > 0) {
      const block = el('div');
      table(block, `This process's warm pool: ${formatBytes(pool.used_bytes)} of ${formatBytes(pool.budget_bytes)}, ${pool.loads} loads, ${pool.evictions} evictions`,
        ['model', 'version', 'bytes', 'leases', 'state'],
        pool.models.map(m => [m.model, m.version, formatBytes(m.bytes), String(m.leases), m.state]), '');
      parts.push(block);
    }
    if ((latest.invalid_models || []).length > 0) {
      const block = el('div');
      table(block, 'Manifests the model store cannot read', ['model', 'version', 'error'],
        latest.invalid_models.map(m => [m.model, m.version, m.error]), '');
      parts.push(block);
    }
    if (parts.length === 0) parts.push(el('p', { class: 'empty' }, 'No model has run yet.'));
    container.replaceChildren(...parts);
  }

  // ---- controls ----

  function start() {
    const form = document.getElementById('key-form');
    const input = document.getElementById('key');
    const interval = document.getElementById('interval');
    input.value = state.key;
    const requested = Number(new URLSearchParams(location.search).get('interval'));
    if (requested === 1 || requested === 2) interval.value = String(requested * 1000);
    state.interval = Number(interval.value);
    form.addEventListener('submit', event => {
      event.preventDefault();
      state.key = input.value.trim();
      if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key); else sessionStorage.removeItem(KEY_STORAGE);
      schedule();
    });
    document.getElementById('key-clear').addEventListener('click', () => {
      state.key = '';
      input.value = '';
      sessionStorage.removeItem(KEY_STORAGE);
      schedule();
    });
    interval.addEventListener('change', () => {
      state.interval = Number(interval.value);
      schedule();
    });
    schedule();
  }

  // For tests and the curious: the parsers, and how many polls have rendered.
  window.serverlessInferenceDashboard = { parsePrometheus, histogramQuantile, bucketIncrease };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
