// siemrelay status page: polls the admin API (its only data source) and updates the page in
// place. No framework, no build step; served by the admin listener under a strict CSP.
'use strict';

(() => {
  const POLL_MS = 1500;
  const HISTORY_ROWS = 50;
  const TOKEN_KEY = 'siemrelay.adminToken';
  const STATUSES = {
    active: { icon: '✓', label: 'active' },
    degraded: { icon: '!', label: 'degraded' },
    failed: { icon: '✕', label: 'failed' },
    disabled: { icon: '–', label: 'disabled' },
  };

  const $ = (id) => document.getElementById(id);
  const view = {
    connection: $('connection'),
    pause: $('pause'),
    forget: $('forget-token'),
    auth: $('auth'),
    authForm: $('auth-form'),
    authError: $('auth-error'),
    token: $('token'),
    status: $('status-view'),
    pipelines: $('pipeline-list'),
    exporters: $('exporter-list'),
    summary: $('exporter-summary'),
    history: $('deliveries'),
    historySelect: $('history-exporter'),
    historyCaption: $('delivery-caption'),
    historyRows: $('delivery-rows'),
    cardTemplate: $('exporter-card'),
    about: $('about'),
    deadLetters: $('dead-letters'),
    deadSelect: $('dead-letter-exporter'),
    deadSummary: $('dead-letter-summary'),
    deadCaption: $('dead-letter-caption'),
    deadRows: $('dead-letter-rows'),
    replay: $('replay'),
    replayResult: $('replay-result'),
  };

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let paused = false;
  let timer = 0;
  let polling = false;
  let previous = null; // { at, counters: Map } from the last poll, for events/s
  let info = null; // GET /api/v1/info
  const cards = new Map(); // exporter id → card elements

  class AuthRequired extends Error {}

  // ---- API -------------------------------------------------------------------------------

  async function api(method, path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit' });
    if (response.status === 401) throw new AuthRequired('the admin API asks for a token');
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      throw new Error(`${method} ${path}: HTTP ${response.status}, not JSON`);
    }
    if (!response.ok) {
      const reason = body && (body.error || body.message);
      throw new Error(`${method} ${path}: HTTP ${response.status}${reason ? `: ${reason}` : ''}`);
    }
    return body;
  }

  const exporterPath = (id, action) =>
    `/api/v1/exporters/${encodeURIComponent(id)}${action ? `/${action}` : ''}`;

  // ---- formatting ------------------------------------------------------------------------

  const number = new Intl.NumberFormat();
  const count = (n) => (typeof n === 'number' ? number.format(n) : '—');

  function bytes(n) {
    if (typeof n !== 'number') return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
  }

  function rate(perSecond) {
    if (perSecond === null || perSecond === undefined) return '… events/s';
    const digits = perSecond < 10 ? 1 : 0;
    return `${perSecond.toFixed(digits)} events/s`;
  }

  function toDate(value) {
    if (value === null || value === undefined || value === '') return null;
    if (typeof value === 'number') return new Date(value > 1e12 ? value : value * 1000);
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  const pad = (n, width = 2) => String(Math.trunc(Math.abs(n))).padStart(width, '0');

  /** `2026-12-04 20:37:41 UTC+01:00`: the date, the time and the zone, in the browser's zone. */
  function formatTime(date) {
    const offset = -date.getTimezoneOffset();
    const zone = `UTC${offset < 0 ? '-' : '+'}${pad(offset / 60)}:${pad(offset % 60)}`;
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
      + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
  }

  function duration(seconds) {
    if (typeof seconds !== 'number') return '—';
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    if (d > 0) return `${d} d ${h} h`;
    if (h > 0) return `${h} h ${m} min`;
    if (m > 0) return `${m} min ${Math.floor(seconds % 60)} s`;
    return `${Math.floor(seconds)} s`;
  }

  function ago(date) {
    const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  /** Fills `element` with a <time> for `value`, or `fallback` when there is none. */
  function setTime(element, value, fallback) {
    const date = toDate(value);
    if (!date) {
      element.textContent = value ? String(value) : fallback;
      return;
    }
    const time = document.createElement('time');
    time.dateTime = date.toISOString();
    time.title = date.toISOString();
    time.textContent = formatTime(date);
    element.replaceChildren(time, ' ', el('span', 'ago', `(${ago(date)})`));
  }

  function el(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function badge(status) {
    const known = STATUSES[status] || { icon: '?', label: String(status || 'unknown') };
    const span = el('span', `badge status-${known.label}`);
    span.append(el('span', 'badge-icon', known.icon), ' ', el('span', 'badge-word', known.label));
    span.firstChild.setAttribute('aria-hidden', 'true');
    return span;
  }

  // ---- events per second -----------------------------------------------------------------

  /** Per-second rates of every counter in `counters` since the previous poll. */
  function rates(counters) {
    const now = performance.now();
    const result = new Map();
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      for (const [key, value] of counters) {
        const before = previous.counters.get(key);
        if (typeof before === 'number' && typeof value === 'number' && seconds > 0) {
          result.set(key, Math.max(0, value - before) / seconds);
        }
      }
    }
    previous = { at: now, counters };
    return result;
  }

  function collectCounters(pipelines) {
    const counters = new Map();
    for (const p of pipelines) {
      counters.set(`in\u0000${p.name}`, p.events_in);
      counters.set(`out\u0000${p.name}`, p.events_out);
      for (const r of p.receivers || []) counters.set(`r\u0000${p.name}\u0000${r.id}`, r.events_received);
      for (const e of p.exporters || []) counters.set(`e\u0000${p.name}\u0000${e.id}`, e.events_sent);
    }
    return counters;
  }

  // ---- pipeline graph --------------------------------------------------------------------

  function edge(text) {
    const li = el('li', 'edge');
    li.append(el('span', 'edge-arrow', '→'), el('span', 'edge-rate', text));
    li.firstChild.setAttribute('aria-hidden', 'true');
    return li;
  }

  function stage(title, nodes) {
    const li = el('li', 'stage');
    li.append(el('h4', 'stage-title', title));
    const list = el('ul', 'nodes');
    if (nodes.length === 0) list.append(el('li', 'node empty', 'none'));
    for (const node of nodes) list.append(node);
    li.append(list);
    return li;
  }

  function renderPipelines(pipelines, perSecond) {
    const fragment = document.createDocumentFragment();
    for (const p of pipelines) {
      const section = el('section', 'pipeline');
      section.setAttribute('aria-label', `Pipeline ${p.name}`);
      const head = el('h3', 'pipeline-title', p.name);
      const totals = el('p', 'pipeline-totals',
        `${count(p.events_in)} events in, ${count(p.events_out)} out`);
      const flow = el('ol', 'flow');

      const receivers = (p.receivers || []).map((r) => {
        const li = el('li', 'node');
        li.dataset.receiver = r.id;
        const reasons = Object.entries(r.events_refused || {}).filter(([, n]) => n > 0);
        const refused = reasons.length === 0
          ? 'refused: none'
          : `refused: ${reasons.map(([reason, n]) => `${count(n)} ${reason}`).join(', ')}`;
        li.append(el('span', 'node-id', r.id), el('span', 'node-rate',
          rate(perSecond.get(`r\u0000${p.name}\u0000${r.id}`))),
        el('span', `node-refused${reasons.length ? ' some' : ''}`, refused));
        return li;
      });
      const processors = (p.processors || []).map((x) => {
        const li = el('li', 'node');
        li.dataset.processor = x.id;
        const dropped = x.events_dropped || 0;
        li.append(el('span', 'node-id', x.id),
          el('span', `node-dropped${dropped ? ' some' : ''}`, `dropped: ${count(dropped)}`));
        return li;
      });
      const exporters = (p.exporters || []).map((e) => {
        const li = el('li', 'node');
        li.append(el('span', 'node-id', e.id), badge(e.status),
          el('span', 'node-rate', rate(perSecond.get(`e\u0000${p.name}\u0000${e.id}`))));
        return li;
      });

      flow.append(
        stage('Receivers', receivers),
        edge(rate(perSecond.get(`in\u0000${p.name}`))),
        stage('Processors', processors),
        edge(rate(perSecond.get(`out\u0000${p.name}`))),
        stage('Exporters', exporters),
      );
      section.append(head, totals, flow);
      fragment.append(section);
    }
    if (pipelines.length === 0) fragment.append(el('p', 'hint', 'No pipelines configured.'));
    view.pipelines.replaceChildren(fragment);
  }

  // ---- exporter cards --------------------------------------------------------------------

  function createCard(id) {
    const article = view.cardTemplate.content.firstElementChild.cloneNode(true);
    const titleId = `exporter-${cards.size}-title`;
    article.querySelector('.card-title').id = titleId;
    article.setAttribute('aria-labelledby', titleId);
    article.dataset.exporter = id;
    const field = (name) => article.querySelector(`[data-field="${name}"]`);
    const card = {
      article,
      title: article.querySelector('.card-title'),
      type: article.querySelector('.card-type'),
      badge: article.querySelector('.badge'),
      icon: article.querySelector('.badge-icon'),
      word: article.querySelector('.badge-word'),
      sent: field('sent'),
      retried: field('retried'),
      failures: field('failures'),
      dead: field('dead'),
      queue: field('queue'),
      meter: field('queue-meter'),
      lastSuccess: field('last-success'),
      lastError: field('last-error'),
      reasonRow: field('reason-row'),
      reason: field('reason'),
      lossesRow: field('losses-row'),
      losses: field('losses'),
      pipelines: field('pipelines'),
      charts: null,
      test: article.querySelector('[data-action="test"]'),
      toggle: article.querySelector('[data-action="toggle"]'),
      history: article.querySelector('[data-action="history"]'),
      deadLetters: article.querySelector('[data-action="dead-letters"]'),
      result: article.querySelector('.test-result'),
      status: '',
    };
    card.title.textContent = id;
    const chartsTitle = article.querySelector('.charts-title');
    chartsTitle.id = `${titleId}-charts`;
    field('charts').setAttribute('aria-labelledby', chartsTitle.id);
    card.charts = createCharts(field('charts'));
    card.test.setAttribute('aria-describedby', titleId);
    card.toggle.setAttribute('aria-describedby', titleId);
    card.history.setAttribute('aria-describedby', titleId);
    card.deadLetters.setAttribute('aria-describedby', titleId);
    card.deadLetters.addEventListener('click', () => showDeadLetters(id));
    card.test.addEventListener('click', () => testDelivery(id, card));
    card.toggle.addEventListener('click', () => toggle(id, card));
    card.history.addEventListener('click', () => showHistory(id));
    cards.set(id, card);
    return card;
  }

  function updateCard(card, e) {
    const status = STATUSES[e.status] ? e.status : 'unknown';
    const known = STATUSES[status] || { icon: '?', label: String(e.status || 'unknown') };
    card.status = status;
    card.article.dataset.status = status;
    card.badge.className = `badge status-${status}`;
    card.icon.textContent = known.icon;
    card.word.textContent = known.label;
    card.type.textContent = `type ${e.type || '—'}`;
    card.sent.textContent = count(e.events_sent);
    card.retried.textContent = count(e.events_retried);
    card.failures.textContent = count(e.failure_count);
    card.dead.textContent = count(e.dead_letter_count ?? e.events_dead_lettered);
    const q = e.queue || {};
    card.queue.textContent =
      `${count(q.events)} of ${count(q.max_events)} events, ${bytes(q.bytes)} of ${bytes(q.max_bytes)}`;
    const fill = Math.max(
      q.max_events ? (q.events || 0) / q.max_events : 0,
      q.max_bytes ? (q.bytes || 0) / q.max_bytes : 0,
    );
    card.meter.value = Math.min(1, fill);
    card.meter.setAttribute('aria-label', `Queue ${Math.round(fill * 100)}% full`);
    setTime(card.lastSuccess, e.last_success, 'never');
    // An error followed by a success is past: shown with its time, not in red.
    const past = e.last_error && e.last_error_current === false;
    const when = toDate(e.last_error_at);
    card.lastError.textContent = e.last_error
      ? `${e.last_error}${when ? ` (${formatTime(when)}${past ? ', past' : ''})` : ''}`
      : 'none';
    card.lastError.classList.toggle('error', Boolean(e.last_error) && !past);
    card.lastError.classList.toggle('past', Boolean(past));
    const why = [e.status !== 'active' ? e.status_reason : null, e.notice].filter(Boolean);
    card.reasonRow.hidden = why.length === 0;
    card.reason.textContent = why.join(' — ');
    const losses = e.queue_losses || [];
    card.lossesRow.hidden = losses.length === 0;
    card.losses.textContent = losses.map((l) => `${l.events} events lost (${l.cause}, records ` +
      `${l.first_seq ?? '?'}..${l.last_seq ?? '?'}, found ${l.found_at}); acknowledge with POST ` +
      `${exporterPath(e.id, 'acknowledge-losses')}`).join('; ');
    card.pipelines.textContent = (e.pipelines || []).join(', ') || '—';
    const disabled = status === 'disabled';
    if (card.toggle.dataset.busy !== '1') {
      card.toggle.textContent = disabled ? 'Enable' : 'Disable';
      card.toggle.dataset.next = disabled ? 'enable' : 'disable';
    }
  }

  function renderExporters(exporters) {
    const seen = new Set();
    exporters.forEach((e, index) => {
      seen.add(e.id);
      const card = cards.get(e.id) || createCard(e.id);
      updateCard(card, e);
      // Keep API order without moving focused elements needlessly.
      if (view.exporters.children[index] !== card.article) {
        view.exporters.insertBefore(card.article, view.exporters.children[index] || null);
      }
    });
    for (const [id, card] of cards) {
      if (!seen.has(id)) {
        card.article.remove();
        cards.delete(id);
      }
    }
    const byStatus = {};
    for (const e of exporters) byStatus[e.status] = (byStatus[e.status] || 0) + 1;
    const parts = Object.entries(byStatus).map(([status, n]) => `${n} ${status}`);
    view.summary.textContent = exporters.length === 0
      ? 'No exporters configured.'
      : `${exporters.length} exporter${exporters.length === 1 ? '' : 's'}: ${parts.join(', ')}.`;
    renderChoices(view.historySelect, exporters);
    renderChoices(view.deadSelect, exporters);
  }

  // ---- charts: the last 15 minutes (GET /api/v1/metrics/history) ---------------------------

  const WINDOW_MS = 15 * 60 * 1000;
  const CHART_W = 300;
  const CHART_H = 60;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** The charts of a card: each draws one or more series of the samples. */
  const CHARTS = [
    {
      key: 'events',
      title: 'Events/s',
      series: [
        { name: 'in', field: 'events_in', rate: true, label: 'in' },
        { name: 'out', field: 'events_out', rate: true, label: 'out' },
      ],
    },
    {
      key: 'queue',
      title: 'Queue depth',
      series: [{ name: 'queue', field: 'queue_events', rate: false, label: 'queued' }],
    },
    {
      key: 'errors',
      title: 'Failed requests/s',
      series: [{ name: 'errors', field: 'errors', rate: true, label: 'failed' }],
    },
  ];

  function svg(tag, attributes) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    return element;
  }

  function createCharts(container) {
    const charts = {};
    for (const spec of CHARTS) {
      const figure = el('figure', 'chart');
      figure.dataset.chart = spec.key;
      const caption = el('figcaption', 'chart-caption');
      const legend = el('span', 'chart-legend');
      legend.append(el('span', 'chart-name', spec.title));
      if (spec.series.length > 1) {
        for (const s of spec.series) legend.append(' ', el('span', `legend legend-${s.name}`, s.label));
      }
      const now = el('span', 'chart-now');
      caption.append(legend, now);
      const drawing = svg('svg', {
        viewBox: `0 0 ${CHART_W} ${CHART_H}`,
        preserveAspectRatio: 'none',
        role: 'img',
        class: 'chart-svg',
      });
      drawing.append(svg('line', { x1: 0, y1: CHART_H / 2, x2: CHART_W, y2: CHART_H / 2, class: 'chart-grid' }));
      const lines = {};
      for (const s of spec.series) {
        const line = svg('polyline', { class: `series series-${s.name}`, 'vector-effect': 'non-scaling-stroke', points: '' });
        line.dataset.series = s.name;
        drawing.append(line);
        lines[s.name] = line;
      }
      const scale = el('p', 'chart-scale');
      figure.append(caption, drawing, scale);
      container.append(figure);
      charts[spec.key] = { spec, now, drawing, lines, scale };
    }
    return charts;
  }

  /** The smallest of 1, 2, 5 × 10ⁿ at or above `value` (at least 1): the top of the scale. */
  function niceTop(value) {
    if (!(value > 1)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  const short = (n) => (n < 10 && n % 1 !== 0 ? n.toFixed(1) : number.format(Math.round(n)));

  /** Draws `points` (samples, oldest first) between `start` and `end` (ms since the epoch);
   *  `first` is when the first sample began. */
  function drawChart(id, chart, points, start, end, first) {
    const x = (at) => Math.max(0, ((at - start) / (end - start)) * CHART_W);
    const values = chart.spec.series.map((s) => points.map((p) => {
      const raw = p.exporter[s.field] || 0;
      return s.rate ? (p.seconds > 0 ? raw / p.seconds : 0) : raw;
    }));
    const top = niceTop(Math.max(0, ...values.flat()));
    const y = (value) => CHART_H - 1 - (value / top) * (CHART_H - 2);
    const now = [];
    chart.spec.series.forEach((s, i) => {
      // Each sample is a step over its interval.
      const coords = points.flatMap((p, j) => [
        [x(p.at - p.seconds * 1000), y(values[i][j])],
        [x(p.at), y(values[i][j])],
      ]);
      const line = chart.lines[s.name];
      line.setAttribute('points', coords.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' '));
      const raw = points.map((p) => p.exporter[s.field] || 0);
      line.dataset.points = String(points.length);
      line.dataset.total = String(raw.reduce((sum, n) => sum + n, 0));
      line.dataset.max = String(Math.max(0, ...raw));
      line.dataset.last = String(raw.length ? raw[raw.length - 1] : 0);
      const last = values[i].length ? values[i][values[i].length - 1] : 0;
      now.push(s.rate ? `${s.label} ${short(last)}/s` : `${short(last)} ${s.label}`);
    });
    chart.now.textContent = points.length ? `now ${now.join(', ')}` : 'no samples yet';
    const scale = `scale 0–${short(top)}${chart.spec.series[0].rate ? '/s' : ''}`;
    chart.scale.textContent = first === null ? `${scale}, no samples yet`
      : end - start >= WINDOW_MS ? `${scale}, 15 min ago → now`
      : `${scale}, ${duration((end - start) / 1000)} ago → now (siemrelay started ${duration((end - first) / 1000)} ago)`;
    const totals = chart.spec.series.map((s) => `${s.label}: ${chart.lines[s.name].dataset[s.rate ? 'total' : 'max']}`
      + `${s.rate ? ' events' : ' at most'}`);
    chart.drawing.setAttribute('aria-label', `${chart.spec.title} of ${id} over the last 15 minutes, `
      + `${points.length} samples; ${points.length ? now.join(', ') : 'no samples yet'}; ${totals.join(', ')}`);
  }

  /** Draws every card's charts from the samples: from 15 minutes before the newest sample (or
   *  from the start of the first, when siemrelay has run for less) to the newest. */
  function renderCharts(history) {
    const samples = (history && history.samples) || [];
    const times = samples.map((s) => toDate(s.time)?.getTime()).filter((t) => typeof t === 'number');
    const end = times.length ? times[times.length - 1] : Date.now();
    const first = times.length ? times[0] - (samples[0].seconds || 0) * 1000 : null;
    const start = Math.max(end - WINDOW_MS, Math.min(first ?? end, end - 60 * 1000));
    for (const [id, card] of cards) {
      const points = [];
      for (const s of samples) {
        const at = toDate(s.time)?.getTime();
        const exporter = s.exporters && s.exporters[id];
        if (exporter && at >= start) points.push({ at, seconds: s.seconds, exporter });
      }
      for (const chart of Object.values(card.charts)) drawChart(id, chart, points, start, end, first);
    }
  }

  // ---- actions ---------------------------------------------------------------------------

  async function testDelivery(id, card) {
    card.test.disabled = true;
    card.test.setAttribute('aria-busy', 'true');
    card.result.className = 'test-result pending';
    card.result.textContent = `Sending a test event through ${id}…`;
    try {
      const r = await api('POST', exporterPath(id, 'test'));
      const status = r.http_status ? `HTTP ${r.http_status}` : 'no HTTP reply';
      const lines = [
        `${r.ok ? 'Test delivery succeeded' : 'Test delivery failed'}: ${r.outcome || '—'}, ${status}, ${count(r.latency_ms)} ms.`,
      ];
      if (r.reply) lines.push(`Reply: ${r.reply}`);
      if (r.hint) lines.push(`Hint: ${r.hint}`);
      card.result.className = `test-result ${r.ok ? 'ok' : 'failed'}`;
      card.result.textContent = lines.join('\n');
      card.result.dataset.ok = r.ok ? 'true' : 'false';
    } catch (error) {
      if (error instanceof AuthRequired) return askForToken(true);
      card.result.className = 'test-result failed';
      card.result.dataset.ok = 'false';
      card.result.textContent = `Test delivery could not run: ${error.message}`;
    } finally {
      card.test.disabled = false;
      card.test.removeAttribute('aria-busy');
    }
  }

  async function toggle(id, card) {
    const action = card.toggle.dataset.next === 'enable' ? 'enable' : 'disable';
    card.toggle.disabled = true;
    card.toggle.dataset.busy = '1';
    try {
      const exporter = await api('POST', exporterPath(id, action));
      card.toggle.dataset.busy = '';
      if (exporter && exporter.id) updateCard(card, exporter);
      card.result.className = 'test-result';
      card.result.textContent = `${id} ${action}d.`;
    } catch (error) {
      if (error instanceof AuthRequired) return askForToken(true);
      card.result.className = 'test-result failed';
      card.result.textContent = `Could not ${action} ${id}: ${error.message}`;
    } finally {
      card.toggle.dataset.busy = '';
      card.toggle.disabled = false;
    }
  }

  // ---- delivery history ------------------------------------------------------------------

  function renderChoices(select, exporters) {
    const ids = exporters.map((e) => e.id);
    const current = Array.from(select.options, (o) => o.value);
    if (ids.join('\u0000') !== current.join('\u0000')) {
      const chosen = select.value;
      select.replaceChildren(...ids.map((id) => new Option(id, id)));
      if (ids.includes(chosen)) select.value = chosen;
    }
  }

  function showHistory(id) {
    view.historySelect.value = id;
    refreshHistory();
    view.history.scrollIntoView({ block: 'start' });
    view.history.focus({ preventScroll: true });
  }

  async function refreshHistory() {
    const id = view.historySelect.value;
    if (!id) {
      view.historyCaption.textContent = 'No exporter selected';
      view.historyRows.replaceChildren();
      return;
    }
    const { deliveries = [] } = await api('GET', exporterPath(id, 'deliveries'));
    if (view.historySelect.value !== id) return; // changed while loading
    const newestFirst = deliveries
      .map((d, index) => ({ d, index, at: toDate(d.time)?.getTime() ?? 0 }))
      .sort((a, b) => b.at - a.at || b.index - a.index)
      .slice(0, HISTORY_ROWS);
    view.historyCaption.textContent = `Latest ${newestFirst.length} deliveries of ${id}, newest first`;
    const rows = newestFirst.map(({ d }) => {
      const tr = el('tr', `outcome-${String(d.outcome || '').replace(/[^a-z_-]/gi, '')}`);
      const time = el('td', 'time');
      setTime(time, d.time, '—');
      tr.append(
        time,
        el('td', 'outcome', d.outcome || '—'),
        el('td', 'num', count(d.events)),
        el('td', 'num', bytes(d.bytes)),
        el('td', 'num', d.http_status ? String(d.http_status) : '—'),
        el('td', 'num', typeof d.latency_ms === 'number' ? `${count(d.latency_ms)} ms` : '—'),
        el('td', 'num', count(d.attempt)),
        el('td', 'error-text', d.error || ''),
      );
      return tr;
    });
    if (rows.length === 0) {
      const tr = el('tr');
      const td = el('td', 'empty', 'No deliveries yet.');
      td.colSpan = 8;
      tr.append(td);
      rows.push(tr);
    }
    view.historyRows.replaceChildren(...rows);
  }

  // ---- dead letters ----------------------------------------------------------------------

  function showDeadLetters(id) {
    view.deadSelect.value = id;
    refreshDeadLetters();
    view.deadLetters.scrollIntoView({ block: 'start' });
    view.deadLetters.focus({ preventScroll: true });
  }

  function renderReplayButton() {
    const allowed = Boolean(info && info.allow_config_changes);
    if (view.replay.dataset.busy === '1') return;
    view.replay.disabled = !allowed || !view.deadSelect.value;
    view.replay.title = allowed
      ? 'Resend these events through the exporter'
      : 'Replaying needs service.admin.allow_config_changes: true';
    view.replay.dataset.allowed = allowed ? 'true' : 'false';
  }

  function showReplay(replay, id) {
    if (!replay) {
      if (view.replayResult.dataset.exporter !== id) {
        view.replayResult.className = 'test-result';
        view.replayResult.textContent = '';
      }
      return;
    }
    view.replayResult.dataset.exporter = id;
    view.replayResult.dataset.state = replay.state;
    const when = toDate(replay.finished_at || replay.started_at);
    const at = when ? ` (${formatTime(when)})` : '';
    if (replay.state === 'running') {
      view.replayResult.className = 'test-result pending';
      view.replayResult.textContent = `Replaying ${count(replay.events)} events through ${id}…${at}`;
    } else if (replay.state === 'done') {
      view.replayResult.className = `test-result ${replay.dead_lettered ? 'failed' : 'ok'}`;
      view.replayResult.textContent = `Replay of ${count(replay.events)} events through ${id}: `
        + `${count(replay.sent)} delivered, ${count(replay.dead_lettered)} dead-lettered again${at}.`
        + (replay.warnings && replay.warnings.length ? `\n${replay.warnings.join('\n')}` : '');
    } else {
      view.replayResult.className = 'test-result failed';
      view.replayResult.textContent = `Replay through ${id} failed: ${replay.error || 'unknown error'}${at}`;
    }
  }

  async function refreshDeadLetters() {
    renderReplayButton();
    const id = view.deadSelect.value;
    if (!id) {
      view.deadSummary.textContent = 'No exporter selected.';
      view.deadRows.replaceChildren();
      return;
    }
    const list = await api('GET', exporterPath(id, 'dead_letters'));
    if (view.deadSelect.value !== id) return; // changed while loading
    view.deadSummary.textContent = list.total === 0
      ? `No dead-lettered events for ${id} (${list.file}).`
      : `${count(list.total)} dead-lettered event${list.total === 1 ? '' : 's'} for ${id} in ${list.file}`
        + `${list.problems && list.problems.length ? `; ${list.problems.length} unreadable lines` : ''}.`;
    view.deadSummary.dataset.total = String(list.total);
    view.deadCaption.textContent = `Newest ${list.entries.length} of ${count(list.total)} dead-lettered events of ${id}`;
    const rows = (list.entries || []).map((d) => {
      const tr = el('tr');
      const time = el('td', 'time');
      setTime(time, d.time, '—');
      tr.append(
        time,
        el('td', 'num', count(d.attempts)),
        el('td', '', d.event_type || '—'),
        el('td', 'num', d.event_id || '—'),
        el('td', '', d.summary || ''),
        el('td', 'error-text', d.error || ''),
      );
      return tr;
    });
    if (rows.length === 0) {
      const tr = el('tr');
      const td = el('td', 'empty', 'No dead-lettered events.');
      td.colSpan = 6;
      tr.append(td);
      rows.push(tr);
    }
    view.deadRows.replaceChildren(...rows);
    showReplay(list.replay, id);
  }

  async function replayDeadLetters() {
    const id = view.deadSelect.value;
    if (!id) return;
    view.replay.disabled = true;
    view.replay.dataset.busy = '1';
    view.replay.setAttribute('aria-busy', 'true');
    try {
      const status = await api('POST', exporterPath(id, 'dead_letters/replay'));
      showReplay(status, id);
      await refreshDeadLetters();
    } catch (error) {
      if (error instanceof AuthRequired) return askForToken(true);
      view.replayResult.className = 'test-result failed';
      view.replayResult.dataset.state = 'refused';
      view.replayResult.textContent = `Replay could not start: ${error.message}`;
    } finally {
      view.replay.dataset.busy = '';
      view.replay.removeAttribute('aria-busy');
      renderReplayButton();
    }
  }

  function renderAbout() {
    if (!info) return;
    const field = (name) => view.about.querySelector(`[data-field="${name}"]`);
    field('version').textContent = `siemrelay ${info.version} (commit ${info.commit})`;
    field('uptime').textContent = `up ${duration(info.uptime_seconds)}`;
    const started = toDate(info.started_at);
    field('started').textContent = started ? `since ${formatTime(started)}` : '';
    field('config').textContent = `config ${info.config_path}`;
    view.about.hidden = false;
  }

  // ---- polling ---------------------------------------------------------------------------

  async function poll() {
    if (polling) return;
    polling = true;
    clearTimeout(timer);
    try {
      const [exporters, pipelines, about, samples] = await Promise.all([
        api('GET', '/api/v1/exporters'),
        api('GET', '/api/v1/pipelines'),
        api('GET', '/api/v1/info'),
        // The charts are extra: a failure there leaves the rest of the page live.
        api('GET', '/api/v1/metrics/history').catch((error) => {
          if (error instanceof AuthRequired) throw error;
          return null;
        }),
      ]);
      info = about;
      const pipelineList = (pipelines && pipelines.pipelines) || [];
      showStatusView();
      renderAbout();
      renderExporters((exporters && exporters.exporters) || []);
      renderCharts(samples);
      renderPipelines(pipelineList, rates(collectCounters(pipelineList)));
      await refreshHistory();
      await refreshDeadLetters();
      view.connection.className = 'connection live';
      view.connection.textContent = `Live, updated ${formatTime(new Date())}`;
    } catch (error) {
      if (error instanceof AuthRequired) {
        polling = false;
        askForToken(Boolean(token));
        return;
      }
      view.connection.className = 'connection down';
      view.connection.textContent = `Cannot reach siemrelay: ${error.message}. Retrying…`;
    }
    polling = false;
    if (!paused) timer = setTimeout(poll, POLL_MS);
  }

  function showStatusView() {
    view.auth.hidden = true;
    view.status.hidden = false;
    view.forget.hidden = !token;
  }

  function askForToken(refused) {
    clearTimeout(timer);
    if (refused) {
      token = '';
      sessionStorage.removeItem(TOKEN_KEY);
    }
    view.status.hidden = true;
    view.forget.hidden = true;
    view.auth.hidden = false;
    view.authError.textContent = refused ? 'That token was refused. Enter the admin token.' : '';
    view.connection.className = 'connection locked';
    view.connection.textContent = 'Waiting for the admin token';
    view.token.focus();
  }

  view.authForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = view.token.value.trim();
    if (!value) return;
    token = value;
    sessionStorage.setItem(TOKEN_KEY, token);
    view.token.value = '';
    view.authError.textContent = '';
    poll();
  });

  view.forget.addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken(false);
  });

  view.pause.addEventListener('click', () => {
    paused = !paused;
    view.pause.setAttribute('aria-pressed', String(paused));
    view.pause.textContent = paused ? 'Resume updates' : 'Pause updates';
    if (paused) {
      clearTimeout(timer);
      view.connection.textContent = 'Updates paused';
    } else {
      poll();
    }
  });

  view.deadSelect.addEventListener('change', () => {
    refreshDeadLetters().catch((error) => {
      if (error instanceof AuthRequired) askForToken(true);
    });
  });

  view.replay.addEventListener('click', replayDeadLetters);

  view.historySelect.addEventListener('change', () => {
    refreshHistory().catch((error) => {
      if (error instanceof AuthRequired) askForToken(true);
    });
  });

  poll();
})();
