// The reconciler status page. It draws what /ui/view says (render/statuspage.py decides
// every word and colour) and asks again every few seconds. Every text from the server is
// set with textContent, never parsed as markup: manifests are written by whoever can
// commit, and a label holding <script> must stay a string on this page.
'use strict';
(function () {
  const POLL_MS = 2000;
  const MAX_BACKOFF_MS = 30000;
  const TONES = ['ok', 'warn', 'error', 'idle'];
  let view = null;
  let etag = null;
  let skew = 0;          // server clock minus ours, from the Date header
  let lastOk = 0;        // our clock at the last answer
  let failures = 0;
  let timer = null;
  let clocks = [];       // [node, render] of every text that shows an age

  function tone(name) { return TONES.indexOf(name) >= 0 ? name : ''; }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ago(iso) {
    const then = Date.parse(iso);
    if (isNaN(then)) return '';
    const s = Math.max(0, Math.floor((Date.now() + skew - then) / 1000));
    if (s < 120) return s + 's';
    if (s < 7200) return Math.floor(s / 60) + 'm';
    if (s < 172800) return Math.floor(s / 3600) + 'h';
    return Math.floor(s / 86400) + 'd';
  }

  function timeText(cell) {
    if (!cell.time) return cell.text || '';
    const age = ago(cell.time);
    if (!age) return cell.text || '';
    return cell.age ? age : age + ' ago';
  }

  function fillCell(td, cell, label) {
    td.setAttribute('data-label', label);
    if (!cell) { td.classList.add('blank'); return; }
    const t = tone(cell.tone);
    if (t) td.classList.add('tone-' + t);
    if (cell.mono) td.classList.add('mono');
    if (cell.time) { td.title = cell.time; td.classList.add('time'); }
    if (cell.chips) {
      if (!cell.chips.length) td.classList.add('blank');
      const box = el('div', 'chips');
      cell.chips.forEach(function (chip) { box.appendChild(el('span', 'chip', chip)); });
      td.appendChild(box);
    } else if (cell.lines) {
      if (!cell.lines.length) td.classList.add('blank');
      const box = el('div', 'cell-lines');
      cell.lines.forEach(function (line) { box.appendChild(el('div', '', line)); });
      td.appendChild(box);
    } else {
      const shown = timeText(cell);
      if (shown === '') td.classList.add('blank');
      td.textContent = shown;
      if (cell.time) clocks.push([td, function () { return timeText(cell); }]);
    }
  }

  function drawFacts(facts) {
    const box = document.getElementById('facts');
    box.replaceChildren();
    (facts || []).forEach(function (fact) {
      const item = el('div');
      item.appendChild(el('dt', '', fact.label));
      const value = el('dd', fact.mono ? 'mono' : '', fact.value);
      if (fact.time) {
        const age = el('span', 'age', ' · ' + ago(fact.time) + ' ago');
        clocks.push([age, function () { return ' · ' + ago(fact.time) + ' ago'; }]);
        value.appendChild(age);
        value.title = fact.time;
      }
      item.appendChild(value);
      box.appendChild(item);
    });
  }

  function drawBanners(banners) {
    const box = document.getElementById('banners');
    box.replaceChildren();
    (banners || []).forEach(function (banner) {
      const node = el('div', 'banner ' + tone(banner.tone));
      node.setAttribute('role', banner.tone === 'error' ? 'alert' : 'status');
      const title = el('h2', '', banner.title);
      if (banner.time) {
        const since = el('span', 'note', ' · since ' + ago(banner.time) + ' ago');
        clocks.push([since, function () { return ' · since ' + ago(banner.time) + ' ago'; }]);
        title.appendChild(since);
      }
      node.appendChild(title);
      const list = el('ul');
      (banner.lines || []).forEach(function (line) { list.appendChild(el('li', '', line)); });
      node.appendChild(list);
      box.appendChild(node);
    });
  }

  function drawSection(section) {
    const node = el('section');
    node.id = 'section-' + section.id;
    const head = el('header');
    head.appendChild(el('h2', '', section.title));
    head.appendChild(el('span', 'note', section.note));
    node.appendChild(head);
    const rows = section.rows || [];
    if (!rows.length) {
      node.appendChild(el('p', 'empty', section.empty));
      return node;
    }
    const scroll = el('div', 'scroll');
    const table = el('table');
    const thead = el('thead');
    const headRow = el('tr');
    section.columns.forEach(function (col) { headRow.appendChild(el('th', '', col.label)); });
    thead.appendChild(headRow);
    table.appendChild(thead);
    const body = el('tbody');
    rows.forEach(function (row) {
      const tr = el('tr');
      section.columns.forEach(function (col) {
        const td = el('td');
        fillCell(td, row[col.key], col.label);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    scroll.appendChild(table);
    node.appendChild(scroll);
    return node;
  }

  function tick() {
    clocks.forEach(function (clock) { clock[0].textContent = clock[1](); });
    drawLive();
  }

  function draw() {
    if (!view) return;
    clocks = [];
    document.title = view.title;
    document.getElementById('title').textContent = view.title;
    const state = document.getElementById('state');
    state.textContent = view.state.label;
    state.className = 'pill ' + tone(view.state.tone);
    drawFacts(view.facts);
    drawBanners(view.banners);
    const toc = document.getElementById('toc');
    toc.replaceChildren();
    const sections = document.getElementById('sections');
    const drawn = [];
    (view.sections || []).forEach(function (section) {
      drawn.push(drawSection(section));
      const link = el('a', '', section.title);
      link.href = '#section-' + section.id;
      link.appendChild(el('span', 'count', (section.rows || []).length));
      toc.appendChild(link);
    });
    sections.replaceChildren.apply(sections, drawn);
    drawLive();
  }

  function drawLive() {
    const live = document.getElementById('live');
    if (failures > 0) {
      live.className = 'live lost';
      live.textContent = 'connection lost, retrying' + (lastOk ? ' · data from ' +
        Math.round((Date.now() - lastOk) / 1000) + 's ago' : '');
    } else {
      live.className = 'live';
      live.textContent = 'live · updated ' + Math.round((Date.now() - lastOk) / 1000) + 's ago';
    }
  }

  function schedule() {
    clearTimeout(timer);
    const delay = failures ? Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, failures)) : POLL_MS;
    timer = setTimeout(poll, document.hidden ? Math.max(delay, 10000) : delay);
  }

  function poll() {
    const headers = etag ? { 'If-None-Match': etag } : {};
    fetch('/ui/view', { headers: headers, cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        const date = Date.parse(response.headers.get('Date') || '');
        if (!isNaN(date)) skew = date - Date.now();
        if (response.status === 304) return null;
        if (!response.ok) throw new Error('HTTP ' + response.status);
        etag = response.headers.get('ETag');
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        lastOk = Date.now();
        if (data) { view = data; draw(); } else { tick(); }
        document.body.setAttribute('data-ready', 'true');
      })
      .catch(function () {
        failures += 1;
        drawLive();
      })
      .then(schedule);
  }

  document.addEventListener('visibilitychange', function () { if (!document.hidden) poll(); });
  poll();
})();
