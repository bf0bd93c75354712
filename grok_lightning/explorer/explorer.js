"use strict";
// The explorer page: plain canvas drawing over data inlined by grok_lightning.explorer. No network,
// no libraries. Every panel has a draw(frame) that is cheap enough to run on each slider move:
// static parts (curves, axes) are drawn once to an offscreen canvas and copied.
(function () {
  // ------------------------------------------------------------------------------ data decoding
  const HALF = (function () {
    const t = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const e = (h >> 10) & 31, m = h & 1023;
      let v = e === 0 ? m * Math.pow(2, -24) : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * Math.pow(2, e - 15);
      t[h] = h & 0x8000 ? -v : v;
    }
    return t;
  })();

  function decode(a) {
    const bin = atob(a.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const buf = bytes.buffer;
    let data;
    if (a.dtype === "q1") {  // int8, one scale per leading index (frame)
      const q = new Int8Array(buf), per = q.length / Math.max(a.shape[0], 1);
      data = new Float32Array(q.length);
      for (let i = 0; i < q.length; i++) data[i] = (q[i] * a.scale[Math.floor(i / per)]) / 127;
    } else if (a.dtype === "f2") {
      const u = new Uint16Array(buf);
      data = new Float32Array(u.length);
      for (let i = 0; i < u.length; i++) data[i] = HALF[u[i]];
    } else if (a.dtype === "f4") data = new Float32Array(buf);
    else if (a.dtype === "f8") data = new Float64Array(buf);
    else if (a.dtype === "i2") data = new Int16Array(buf);
    else if (a.dtype === "i1") data = new Int8Array(buf);
    else data = new Int32Array(buf);
    return { data: data, shape: a.shape };
  }

  function walk(o) {
    if (Array.isArray(o)) return o.map(walk);
    if (o && typeof o === "object") {
      if (typeof o.b64 === "string" && o.dtype) return decode(o);
      for (const k of Object.keys(o)) o[k] = walk(o[k]);
    }
    return o;
  }

  // ------------------------------------------------------------------------------ small helpers
  const DPR = Math.min(2, window.devicePixelRatio || 1);
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  const TRAIN = "#1f77b4", TEST = "#d62728", MEMORISE = "#ff7f0e", GENERALISE = "#2ca02c";
  const FONT = "11px system-ui, sans-serif", SMALL = "10px system-ui, sans-serif";

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }

  function canvas(parent, w, h, id) {
    const c = el("canvas", id ? { id: id } : {});
    c.width = Math.round(w * DPR);
    c.height = Math.round(h * DPR);
    c.style.width = w + "px";
    c.style.height = h + "px";
    parent.appendChild(c);
    const ctx = c.getContext("2d");
    ctx.scale(DPR, DPR);
    return { c: c, ctx: ctx, w: w, h: h };
  }

  function offscreen(w, h) {
    const c = document.createElement("canvas");
    c.width = Math.round(w * DPR);
    c.height = Math.round(h * DPR);
    const ctx = c.getContext("2d");
    ctx.scale(DPR, DPR);
    return { c: c, ctx: ctx };
  }

  function panel(parent, title, explain) {
    const p = el("div", { class: "panel" }, [el("h2", { text: title })]);
    if (explain) p.appendChild(el("p", { class: "explain", text: explain }));
    parent.appendChild(p);
    return p;
  }

  function fmtStep(s) { return Math.round(s).toLocaleString("en-US"); }
  function fmtNum(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (Number.isInteger(v) && a < 1e6) return String(v);
    return a >= 1e-3 && a < 1e4 ? v.toPrecision(3) : v.toExponential(2);
  }
  // A tick label with as many decimals as the tick spacing needs (0.2 -> "0.2", 25000 -> "25k").
  function fmtTick(v, step) {
    const a = Math.abs(v);
    if (a >= 1e6 && step >= 1e5) return +(v / 1e6).toFixed(2) + "M";
    if (a >= 1e3 && step >= 1e3) return +(v / 1e3).toFixed(2) + "k";
    if (a !== 0 && (a < 1e-3 || !step)) return fmtNum(v);
    return v.toFixed(clamp(-Math.floor(Math.log10(step) + 1e-9), 0, 6));
  }
  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return Object.assign([lo], { step: 1 });
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    out.step = step;
    return out;
  }

  // A 256-entry colour table from anchor colours (position 0..1, [r, g, b]).
  function lut(anchors) {
    const t = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      const x = i / 255;
      let j = 0;
      while (j < anchors.length - 2 && x > anchors[j + 1][0]) j++;
      const [x0, c0] = anchors[j], [x1, c1] = anchors[j + 1];
      const f = clamp((x - x0) / (x1 - x0), 0, 1);
      for (let k = 0; k < 3; k++) t[i * 3 + k] = c0[k] + f * (c1[k] - c0[k]);
    }
    return t;
  }
  // red positive, blue negative, white at 0 (as the PNG figures); dark-to-bright for norms
  const DIVERGING = lut([[0, [33, 102, 172]], [0.25, [103, 169, 207]], [0.5, [247, 247, 247]], [0.75, [239, 138, 98]], [1, [178, 24, 43]]]);
  const SEQUENTIAL = lut([[0, [12, 8, 38]], [0.3, [98, 25, 128]], [0.6, [222, 73, 104]], [0.85, [254, 170, 108]], [1, [252, 253, 191]]]);

  function maxAbs(arr, start, len) {
    let m = 0;
    for (let i = start; i < start + len; i++) {
      const a = Math.abs(arr[i]);
      if (a > m) m = a;
    }
    return m;
  }

  function lowerBound(sorted, x) {
    let lo = 0, hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  function nearestIndex(sorted, x) {
    const i = lowerBound(sorted, x);
    if (i <= 0) return 0;
    if (i >= sorted.length) return sorted.length - 1;
    return x - sorted[i - 1] <= sorted[i] - x ? i - 1 : i;
  }

  // ------------------------------------------------------------------------------ line plots
  // spec: {id, width, height, title, logY, yMin, yMax, series: [{x, y, colour, label, dash, width, alpha}],
  //        vlines: [{x, colour, label}], hlines: [{y, colour, label}], xLabel, yLabel, legend, onPick(x)}
  function linePlot(parent, spec) {
    const W = spec.width || 520, H = spec.height || 240;
    const view = canvas(parent, W, H, spec.id);
    const layer = offscreen(W, H);
    const items = spec.legend || legendItems(spec);
    layer.ctx.font = SMALL;
    const legendW = items.length ? Math.max(...items.map((it) => layer.ctx.measureText(it.label).width)) + 34 : 0;
    // the legend sits right of the plot, where it never hides a curve
    const m = { l: 56, r: 12 + legendW, t: spec.title ? 20 : 8, b: 34 };
    let xs = [Infinity, -Infinity], ys = [Infinity, -Infinity];
    for (const s of spec.series) {
      for (let i = 0; i < s.x.length; i++) {
        const x = s.x[i], y = s.y[i];
        if (!Number.isFinite(x) || !Number.isFinite(y) || (spec.logY && !(y > 0))) continue;
        if (x < xs[0]) xs[0] = x;
        if (x > xs[1]) xs[1] = x;
        if (y < ys[0]) ys[0] = y;
        if (y > ys[1]) ys[1] = y;
      }
    }
    if (!Number.isFinite(xs[0])) xs = [0, 1];
    if (xs[1] === xs[0]) xs[1] = xs[0] + 1;
    if (spec.yMin !== undefined) ys[0] = spec.yMin;
    if (spec.yMax !== undefined) ys[1] = spec.yMax;
    if (!Number.isFinite(ys[0])) ys = spec.logY ? [1e-3, 1] : [0, 1];
    if (spec.logY) {
      ys = [Math.floor(Math.log10(ys[0])), Math.ceil(Math.log10(ys[1]))];
      if (ys[1] === ys[0]) ys[1] += 1;
    } else if (ys[1] === ys[0]) ys = [ys[0] - 1, ys[1] + 1];
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const X = (x) => m.l + ((x - xs[0]) / (xs[1] - xs[0])) * pw;
    const Y = (y) => {
      const v = spec.logY ? Math.log10(y) : y;
      return m.t + ph - ((v - ys[0]) / (ys[1] - ys[0])) * ph;
    };

    function drawStatic() {
      const g = layer.ctx;
      g.fillStyle = "#fff";
      g.fillRect(0, 0, W, H);
      g.font = FONT;
      g.fillStyle = "#222";
      if (spec.title) g.fillText(spec.title, m.l, 13);
      g.strokeStyle = "#e6e6e6";
      g.lineWidth = 1;
      g.fillStyle = "#555";
      g.textAlign = "right";
      g.textBaseline = "middle";
      const yt = spec.logY ? decades(ys[0], ys[1]) : niceTicks(ys[0], ys[1], 5);
      const ystep = yt.step || 1;
      for (const t of yt) {
        const py = spec.logY ? m.t + ph - ((t - ys[0]) / (ys[1] - ys[0])) * ph : Y(t);
        g.beginPath();
        g.moveTo(m.l, py);
        g.lineTo(m.l + pw, py);
        g.stroke();
        g.fillText(spec.logY ? "1e" + t : fmtTick(t, ystep), m.l - 4, py);
      }
      g.textAlign = "center";
      g.textBaseline = "top";
      const xt = niceTicks(xs[0], xs[1], clamp(Math.floor(pw / 75), 2, 8));
      for (const t of xt) {
        const px = X(t);
        g.beginPath();
        g.moveTo(px, m.t);
        g.lineTo(px, m.t + ph);
        g.stroke();
        g.fillText(fmtTick(t, xt.step || 1), px, m.t + ph + 3);
      }
      g.fillText(spec.xLabel || "step", m.l + pw / 2, H - 13);
      if (spec.yLabel) {
        g.save();
        g.translate(11, m.t + ph / 2);
        g.rotate(-Math.PI / 2);
        g.textBaseline = "middle";
        g.fillText(spec.yLabel, 0, 0);
        g.restore();
      }
      g.strokeStyle = "#999";
      g.strokeRect(m.l, m.t, pw, ph);
      g.save();
      g.beginPath();
      g.rect(m.l, m.t, pw, ph);
      g.clip();
      for (const h of spec.hlines || []) {
        g.strokeStyle = h.colour;
        g.setLineDash([2, 3]);
        g.beginPath();
        g.moveTo(m.l, Y(h.y));
        g.lineTo(m.l + pw, Y(h.y));
        g.stroke();
      }
      for (const v of spec.vlines || []) {
        if (v.x === null || v.x === undefined) continue;
        g.strokeStyle = v.colour;
        g.lineWidth = 1.2;
        g.setLineDash([5, 3]);
        g.beginPath();
        g.moveTo(X(v.x), m.t);
        g.lineTo(X(v.x), m.t + ph);
        g.stroke();
      }
      g.setLineDash([]);
      for (const s of spec.series) {
        g.strokeStyle = s.colour;
        g.globalAlpha = s.alpha === undefined ? 1 : s.alpha;
        g.lineWidth = s.width || 1.4;
        g.setLineDash(s.dash || []);
        g.beginPath();
        let pen = false;
        for (let i = 0; i < s.x.length; i++) {
          const y = s.y[i];
          if (!Number.isFinite(y) || (spec.logY && !(y > 0))) { pen = false; continue; }
          const px = X(s.x[i]), py = Y(y);
          if (pen) g.lineTo(px, py);
          else g.moveTo(px, py);
          pen = true;
        }
        g.stroke();
      }
      g.globalAlpha = 1;
      g.setLineDash([]);
      g.restore();
      legend(g, items, m.l + pw + 8, m.t);
    }

    function draw(markerX) {
      const g = view.ctx;
      g.clearRect(0, 0, W, H);
      g.drawImage(layer.c, 0, 0, W, H);
      if (markerX !== undefined && markerX !== null) {
        const px = X(markerX);
        g.strokeStyle = "#000";
        g.lineWidth = 1.5;
        g.beginPath();
        g.moveTo(px, m.t);
        g.lineTo(px, m.t + ph);
        g.stroke();
        for (const s of spec.series.filter((s) => s.markDots)) {
          const i = nearestIndex(s.x, markerX);
          const y = s.y[i];
          if (!Number.isFinite(y) || (spec.logY && !(y > 0))) continue;
          g.fillStyle = s.colour;
          g.beginPath();
          g.arc(X(s.x[i]), Y(y), 3.5, 0, 2 * Math.PI);
          g.fill();
        }
        view.c.dataset.markerStep = String(markerX);
      }
    }

    if (spec.onPick) {
      view.c.classList.add("clickable");
      view.c.addEventListener("click", (ev) => {
        const r = view.c.getBoundingClientRect();
        const px = ev.clientX - r.left;
        const x = xs[0] + ((px - m.l) / pw) * (xs[1] - xs[0]);
        spec.onPick(clamp(x, xs[0], xs[1]));
      });
    }
    drawStatic();
    draw(null);
    return { draw: draw, canvas: view.c, xToPx: X };
  }

  function decades(lo, hi) {
    const out = [];
    const every = Math.max(1, Math.ceil((hi - lo) / 7));
    for (let d = lo; d <= hi; d += every) out.push(d);
    return out;
  }

  function legendItems(spec) {
    const items = spec.series.filter((s) => s.label).map((s) => ({ colour: s.colour, label: s.label, dash: s.dash }));
    for (const v of spec.vlines || []) if (v.label && v.x !== null && v.x !== undefined) items.push({ colour: v.colour, label: v.label, dash: [5, 3] });
    for (const h of spec.hlines || []) if (h.label) items.push({ colour: h.colour, label: h.label, dash: [2, 3] });
    return items;
  }

  function legend(g, items, x, y) {
    if (!items.length) return;
    g.font = SMALL;
    g.textAlign = "left";
    g.textBaseline = "middle";
    items.forEach((it, i) => {
      const yy = y + 9 + i * 13;
      g.strokeStyle = it.colour;
      g.lineWidth = 1.6;
      g.setLineDash(it.dash || []);
      g.beginPath();
      g.moveTo(x + 4, yy);
      g.lineTo(x + 22, yy);
      g.stroke();
      g.setLineDash([]);
      g.fillStyle = "#333";
      g.fillText(it.label, x + 26, yy);
    });
  }

  // ------------------------------------------------------------------------------ heatmaps
  // spec: {id, title, rows, cols, values(frame) -> [start, array], globalMax, cmap, rowNames(i),
  //        rowOrder() / colOrder() -> index arrays or null, rowMarks [row boundary], cellMarks(frame)
  //        -> [[row, col]], rowLabel, colLabel, maxWidth, maxHeight, perFrame() -> bool}
  function heatmap(parent, spec) {
    const R = spec.rows, C = spec.cols;
    const cw = clamp(Math.floor((spec.maxWidth || 430) / C), 2, 14);
    const ch = clamp(Math.floor((spec.maxHeight || 300) / R), 3, 14);
    const showRowNames = ch >= 10 && spec.rowNames;
    const m = { l: showRowNames ? 58 : 38, t: 18, r: 64, b: 32 };
    const W = m.l + C * cw + m.r, H = m.t + R * ch + m.b;
    const view = canvas(parent, W, H, spec.id);
    const img = document.createElement("canvas");  // one pixel per cell, scaled up when copied
    img.width = C;
    img.height = R;
    const ictx = img.getContext("2d");
    const pixels = ictx.createImageData(C, R);
    const table = spec.cmap === "seq" ? SEQUENTIAL : DIVERGING;

    function draw(frame) {
      const [start, arr] = spec.values(frame);
      const perFrame = spec.perFrame();
      let vmax = perFrame ? maxAbs(arr, start, R * C) : spec.globalMax;
      if (!(vmax > 0)) vmax = 1;
      const rows = spec.rowOrder ? spec.rowOrder() : null;
      const cols = spec.colOrder ? spec.colOrder() : null;
      const px = pixels.data;
      for (let r = 0; r < R; r++) {
        const sr = rows ? rows[r] : r;
        for (let c = 0; c < C; c++) {
          const v = arr[start + sr * C + (cols ? cols[c] : c)];
          const f = spec.cmap === "seq" ? v / vmax : 0.5 + (0.5 * v) / vmax;
          const k = Number.isFinite(f) ? Math.round(clamp(f, 0, 1) * 255) * 3 : 0;
          const o = (r * C + c) * 4;
          px[o] = table[k];
          px[o + 1] = table[k + 1];
          px[o + 2] = table[k + 2];
          px[o + 3] = 255;
        }
      }
      ictx.putImageData(pixels, 0, 0);
      const g = view.ctx;
      g.clearRect(0, 0, W, H);
      g.imageSmoothingEnabled = false;
      g.drawImage(img, m.l, m.t, C * cw, R * ch);
      g.font = FONT;
      g.fillStyle = "#222";
      g.textAlign = "left";
      g.textBaseline = "alphabetic";
      g.fillText(spec.title, m.l, 12);
      g.strokeStyle = "#000";
      g.lineWidth = 1.2;
      for (const b of spec.rowMarks || []) {
        g.setLineDash(b === spec.rowMarks[0] ? [4, 2] : []);
        g.beginPath();
        g.moveTo(m.l - 3, m.t + b * ch);
        g.lineTo(m.l + C * cw + 3, m.t + b * ch);
        g.stroke();
      }
      g.setLineDash([]);
      if (spec.cellMarks) {
        g.strokeStyle = "#00e5ff";
        g.lineWidth = 1.2;
        const inv = cols ? inverse(cols) : null;
        for (const [r, c] of spec.cellMarks(frame)) {
          const cc = inv ? inv[c] : c;
          g.strokeRect(m.l + cc * cw + 0.5, m.t + r * ch + 0.5, cw - 1, ch - 1);
        }
      }
      axisLabels(g, rows, cols, m, cw, ch, W, H);
      colourBar(g, m.l + C * cw + 10, m.t, Math.max(40, R * ch), vmax, spec.cmap, table);
      view.c.dataset.frame = String(frame);
    }

    function axisLabels(g, rows, cols, m, cw, ch, W, H) {
      g.font = SMALL;
      g.fillStyle = "#444";
      g.textAlign = "right";
      g.textBaseline = "middle";
      const rowEvery = ch >= 10 ? 1 : Math.ceil(12 / ch);
      for (let r = 0; r < R; r += rowEvery) {
        const i = rows ? rows[r] : r;
        g.fillText(spec.rowNames ? spec.rowNames(i) : String(i), m.l - 4, m.t + (r + 0.5) * ch);
      }
      g.textAlign = "center";
      g.textBaseline = "top";
      const colEvery = Math.max(1, Math.ceil(22 / cw));
      for (let c = 0; c < C; c += colEvery) {
        const i = cols ? cols[c] : c;
        g.fillText(spec.colNames ? spec.colNames(i) : String(i), m.l + (c + 0.5) * cw, m.t + R * ch + 2);
      }
      g.fillText(spec.colLabel || "", m.l + (C * cw) / 2, H - 13);
      g.save();
      g.translate(8, m.t + (R * ch) / 2);
      g.rotate(-Math.PI / 2);
      g.textBaseline = "middle";
      g.fillText(spec.rowLabel || "", 0, 0);
      g.restore();
    }
    return { draw: draw, canvas: view.c };
  }

  function tint(hex) {  // halfway to white
    const v = parseInt(hex.slice(1), 16);
    const mix = (c) => Math.round((c + 255) / 2);
    return "rgb(" + mix(v >> 16) + "," + mix((v >> 8) & 255) + "," + mix(v & 255) + ")";
  }

  function inverse(order) {
    const inv = new Array(order.length);
    order.forEach((v, i) => { inv[v] = i; });
    return inv;
  }

  function colourBar(g, x, y, h, vmax, cmap, table) {
    for (let i = 0; i < h; i++) {
      const k = Math.round((1 - i / (h - 1)) * 255) * 3;
      g.fillStyle = "rgb(" + table[k] + "," + table[k + 1] + "," + table[k + 2] + ")";
      g.fillRect(x, y + i, 9, 1);
    }
    g.strokeStyle = "#999";
    g.lineWidth = 1;
    g.strokeRect(x, y, 9, h);
    g.font = SMALL;
    g.fillStyle = "#444";
    g.textAlign = "left";
    g.textBaseline = "middle";
    g.fillText(fmtNum(vmax), x + 12, y + 4);
    g.fillText(cmap === "seq" ? "0" : fmtNum(-vmax), x + 12, y + h - 4);
    if (cmap !== "seq") g.fillText("0", x + 12, y + h / 2);
  }

  // ------------------------------------------------------------------------------ stars, circles, waves
  // Points (cos, sin) of some neurons joined in angle order: a regular star once a group has grokked.
  function drawStar(g, size, pts, labels, radius, opts) {
    const c = size / 2, s = (size / 2 - 12) / (radius > 0 ? radius : 1);
    g.clearRect(0, 0, size, size);
    g.fillStyle = "#fff";
    g.fillRect(0, 0, size, size);
    g.strokeStyle = "#ddd";
    g.lineWidth = 1;
    g.beginPath();
    g.moveTo(6, c);
    g.lineTo(size - 6, c);
    g.moveTo(c, 6);
    g.lineTo(c, size - 6);
    g.stroke();
    if (opts && opts.trails) {
      opts.trails.forEach((trail, j) => {
        g.strokeStyle = PALETTE[j % PALETTE.length];
        g.globalAlpha = 0.35;
        g.beginPath();
        trail.forEach(([x, y], i) => (i ? g.lineTo(c + x * s, c - y * s) : g.moveTo(c + x * s, c - y * s)));
        g.stroke();
      });
      g.globalAlpha = 1;
    }
    if (opts && opts.ring) {
      const mean = pts.reduce((a, [x, y]) => a + Math.hypot(x, y), 0) / Math.max(1, pts.length);
      g.strokeStyle = "#888";
      g.setLineDash([3, 3]);
      g.beginPath();
      g.arc(c, c, mean * s, 0, 2 * Math.PI);
      g.stroke();
      g.setLineDash([]);
    }
    const order = pts.map((p, i) => i).sort((a, b) => Math.atan2(pts[a][1], pts[a][0]) - Math.atan2(pts[b][1], pts[b][0]));
    if (pts.length > 2) {
      g.fillStyle = "rgba(70, 110, 200, 0.10)";
      g.strokeStyle = "rgba(70, 110, 200, 0.7)";
      g.beginPath();
      order.forEach((i, k) => (k ? g.lineTo(c + pts[i][0] * s, c - pts[i][1] * s) : g.moveTo(c + pts[i][0] * s, c - pts[i][1] * s)));
      g.closePath();
      g.fill();
      g.stroke();
    }
    g.font = SMALL;
    g.textAlign = "left";
    g.textBaseline = "bottom";
    pts.forEach(([x, y], i) => {
      const col = PALETTE[i % PALETTE.length];
      g.strokeStyle = col;
      g.lineWidth = 1.3;
      g.beginPath();
      g.moveTo(c, c);
      g.lineTo(c + x * s, c - y * s);
      g.stroke();
      g.fillStyle = col;
      g.beginPath();
      g.arc(c + x * s, c - y * s, 3, 0, 2 * Math.PI);
      g.fill();
      if (labels) g.fillText(labels[i], c + x * s + 3, c - y * s - 1);
    });
  }

  // ------------------------------------------------------------------------------ the run page
  function runPage(D, root) {
    const state = { frame: 0, playing: null, lastRedrawMs: 0, perFrame: false, byFreq: false };
    const header = el("header", {}, [el("h1", { text: D.title }), el("div", { class: "sub", text: D.config || "" })]);
    const verdict = [D.status ? "status: " + D.status : null, D.verdict, D.phase ? "article's rule: " + D.phase + (D.phase_reason ? " (" + D.phase_reason + ")" : "") : null,
      D.fate && D.fate !== "generalised" ? "fate: " + D.fate + (D.fate_reason ? " (" + D.fate_reason + ")" : "") : null, D.budget ? "budget: " + D.budget : null]
      .filter(Boolean).join("  ·  ");
    if (verdict) header.appendChild(el("div", { class: "sub", text: verdict }));
    for (const n of D.notes || []) header.appendChild(el("div", { class: "note", text: n }));
    root.appendChild(header);
    const F = D.frames;
    const steps = F ? Array.from(F.steps.data) : [];
    const controls = el("div", { class: "controls" });
    root.appendChild(controls);
    const main = el("main");
    root.appendChild(main);
    const panels = [];

    // --- controls
    let slider = null, readout = null;
    if (F) {
      const play = el("button", { id: "play", type: "button", text: "▶ play" });
      slider = el("input", { id: "frame", type: "range", min: "0", max: String(steps.length - 1), step: "1", value: "0" });
      readout = el("span", { id: "readout", class: "readout" });
      const perFrame = el("input", { id: "per-frame-scale", type: "checkbox" });
      controls.append(play, slider, readout, el("label", {}, [perFrame, " scale each frame on its own"]));
      perFrame.addEventListener("change", () => { state.perFrame = perFrame.checked; redraw(); });
      if (F.fourier) {
        const byFreq = el("input", { id: "sort-by-frequency", type: "checkbox" });
        controls.append(el("label", {}, [byFreq, " neurons sorted by final frequency"]));
        byFreq.addEventListener("change", () => { state.byFreq = byFreq.checked; redraw(); });
      }
      slider.addEventListener("input", () => setFrame(Number(slider.value)));
      play.addEventListener("click", () => togglePlay(play));
    } else {
      controls.style.display = "none";  // the note above says why there is no slider
    }

    // --- curves
    const C = D.curves;
    const pick = (x) => setFrame(nearestIndex(steps, x));
    const marks = D.milestones || {};
    const vlines = [
      { x: marks.memorise_step, colour: MEMORISE, label: marks.memorise_step != null ? "memorised, step " + fmtStep(marks.memorise_step) : "" },
      { x: marks.generalise_step, colour: GENERALISE, label: marks.generalise_step != null ? "generalised, step " + fmtStep(marks.generalise_step) : "" },
    ];
    let lossPlot = null;
    if (C) {
      const row = el("div", { class: "row" });
      main.appendChild(row);
      const x = C.steps.data;
      const p = panel(row, "Loss and accuracy", "train vs test; dashed: first step at 99% train (memorised) and test (generalised) accuracy." + (F ? " Click a curve to jump there." : ""));
      const pair = el("div", { class: "grid" });
      p.appendChild(pair);
      lossPlot = linePlot(pair, {
        id: "curve-loss", title: "loss (log scale)", logY: true, width: 560, height: 250, vlines: vlines,
        series: [{ x: x, y: C.train_loss.data, colour: TRAIN, label: "train", markDots: true }, { x: x, y: C.test_loss.data, colour: TEST, label: "test", markDots: true }],
        onPick: F ? pick : null,
      });
      const accPlot = linePlot(pair, {
        id: "curve-acc", title: "accuracy", width: 560, height: 250, yMin: 0, yMax: 1, vlines: vlines,
        series: [{ x: x, y: C.train_acc.data, colour: TRAIN, label: "train", markDots: true }, { x: x, y: C.test_acc.data, colour: TEST, label: "test", markDots: true }],
        onPick: F ? pick : null,
      });
      panels.push((f) => { lossPlot.draw(steps[f]); accPlot.draw(steps[f]); });
    }
    if (F) buildFramePanels(F, main, panels, state, pick, vlines);
    // end-of-run figures drawn by Python (the transformer's), carried as data: URIs
    for (const fig of D.figures || []) {
      const row = el("div", { class: "row" });
      main.appendChild(row);
      const fp = panel(row, fig.title, fig.caption || "");
      const img = el("img", { class: "run-figure", src: fig.src, alt: fig.title });
      img.style.maxWidth = "100%";
      fp.appendChild(img);
    }

    function redraw() {
      if (!F) return;
      const t0 = performance.now();
      const f = state.frame;
      for (const draw of panels) draw(f);
      slider.value = String(f);
      readout.textContent = "step " + fmtStep(steps[f]) + "  (frame " + (f + 1) + " of " + steps.length + ")" + fateAt(f);
      state.lastRedrawMs = performance.now() - t0;
    }
    function fateAt(f) {  // the fate as the run stood at this step (grok_lightning.fate)
      const T = D.fate_track;
      if (!T || T.fate[f] == null) return "";
      let text = "  ·  fate then: " + T.fate[f] + (T.eta[f] != null ? " (trend reaches 1e-2 by ~" + fmtStep(T.eta[f]) + ")" : "");
      if (T.forecast && T.forecast[f]) text += "  ·  " + T.forecast[f];
      return text;
    }
    function setFrame(f) {
      state.frame = clamp(Math.round(f), 0, steps.length - 1);
      redraw();
    }
    function togglePlay(button) {
      if (state.playing) {
        clearInterval(state.playing);
        state.playing = null;
        button.textContent = "▶ play";
        return;
      }
      if (state.frame >= steps.length - 1) setFrame(0);
      button.textContent = "❚❚ pause";
      state.playing = setInterval(() => {
        if (state.frame >= steps.length - 1) return togglePlay(button);
        setFrame(state.frame + 1);
      }, 1000 / 12);
    }
    redraw();
    return {
      kind: "run",
      nFrames: steps.length,
      steps: steps,
      state: state,
      setFrame: setFrame,
      frame: () => state.frame,
      redraw: redraw,
      // where a step lies on the loss plot, in its canvas's CSS pixels (tests click there)
      curvePx: (step) => (lossPlot ? lossPlot.xToPx(step) : null),
    };
  }

  function buildFramePanels(F, main, panels, state, pick, vlines) {
    const T = F.count, fo = F.fourier;
    const neuronOrder = () => (fo && state.byFreq ? fo.order : null);
    const perFrame = () => state.perFrame;
    const steps = F.steps.data;

    // --- circles (a fixed circle embedding): every neuron on each side, with its path so far
    if (F.circles) {
      const row = el("div", { class: "row" });
      main.appendChild(row);
      const cc = F.circles, n = cc.in.shape[2], nf = cc.freqs.length;
      const p = panel(row, "The neurons on the circle", "each neuron's (cos, sin) weight at the embedding frequency, input side and output side; faint lines: where it has been. Dashed: the neurons' mean radius.");
      const grid = el("div", { class: "grid" });
      p.appendChild(grid);
      const views = [];
      cc.freqs.forEach((f, fi) => {
        for (const side of ["in", "out"]) {
          const cell = el("div", { class: "cell" }, [el("div", { text: (side === "in" ? "input" : "output") + " side, frequency " + f })]);
          grid.appendChild(cell);
          const v = canvas(cell, 250, 250, "circle-" + f + "-" + side);
          const arr = cc[side].data;
          const at = (t, j) => { const o = ((t * nf + fi) * n + j) * 2; return [arr[o], arr[o + 1]]; };
          let rmax = 0;
          for (let t = 0; t < T; t++) for (let j = 0; j < n; j++) rmax = Math.max(rmax, Math.hypot(...at(t, j)));
          views.push({ v: v, at: at, rmax: rmax });
        }
      });
      const labels = Array.from({ length: n }, (_, j) => String(j));
      panels.push((t) => {
        for (const { v, at, rmax } of views) {
          const pts = labels.map((_, j) => at(t, j));
          const trails = labels.map((_, j) => { const tr = []; for (let s = 0; s <= t; s++) tr.push(at(s, j)); return tr; });
          const r = state.perFrame ? Math.max(...pts.map((q) => Math.hypot(q[0], q[1]))) : rmax;
          drawStar(v.ctx, 250, pts, labels, r * 1.05, { trails: trails, ring: true });
          v.c.dataset.frame = String(t);
        }
      });
    }

    // --- weights
    const row = el("div", { class: "row" });
    main.appendChild(row);
    const names = fo ? (i) => i + " k" + fo.final_freqs[i] : null;
    const hp = panel(row, "Weights over training", F.distractor
      ? "W_input: one row per input bit (the first " + F.distractor.k + " decide the label; the last row is the bias), one column per neuron. Red positive, blue negative."
      : "collapsed weights, one row per neuron (labels: neuron and its final frequency k). Red positive, blue negative; noise while memorising, waves once generalised.");
    const hgrid = el("div", { class: "grid" });
    if (F.distractor) hgrid.style.flexDirection = "column";  // W_output under W_input, as wide
    hp.appendChild(hgrid);
    for (const h of F.heatmaps) {
      const [, R, Cc] = h.matrix.shape;
      const arr = h.matrix.data, size = R * Cc;
      const map = heatmap(hgrid, {
        id: "heat-" + h.name, title: h.name + " [" + R + " x " + Cc + "]", rows: R, cols: Cc,
        values: (t) => [t * size, arr], globalMax: maxAbs(arr, 0, arr.length), cmap: "div",
        rowNames: h.row_names ? (i) => h.row_names[i] : names, rowOrder: h.sortable ? neuronOrder : null,
        rowMarks: h.row_marks, rowLabel: h.rows, colLabel: h.cols, perFrame: perFrame,
        maxWidth: F.distractor ? 520 : 430, maxHeight: R === 1 ? 24 : 320,
      });
      panels.push(map.draw);
    }
    if (F.distractor) {
      const d = F.distractor;
      const p = panel(row, "Weight on the distractor bits", "share of |W_input| (bit rows) on bits " + (d.k + 1) + ".." + d.n_bits + ", which the label ignores; it falls when the model finds the rule.");
      const plot = linePlot(p, {
        id: "distractor", width: 460, height: 250, yMin: 0, yMax: 1, yLabel: "share of |W_input|", vlines: vlines,
        series: [{ x: steps, y: d.share.data, colour: "#9467bd", label: "bits " + (d.k + 1) + ".." + d.n_bits, markDots: true }],
        hlines: [{ y: (d.n_bits - d.k) / d.n_bits, colour: "#888", label: "uniform (" + (d.n_bits - d.k) + "/" + d.n_bits + ")" }],
        onPick: pick,
      });
      panels.push((t) => plot.draw(steps[t]));
    }
    if (fo) fourierPanels(F, fo, main, panels, state, neuronOrder, perFrame, pick, vlines);
  }

  function fourierPanels(F, fo, main, panels, state, neuronOrder, perFrame, pick, vlines) {
    const T = F.count, steps = F.steps.data, p = fo.p;
    const [, Fq, n] = fo.norms_in.shape;
    const freqs = fo.freqs.data;

    // --- DFT heatmaps: frequency x neuron, each neuron's current frequency outlined
    const row = el("div", { class: "row" });
    main.appendChild(row);
    const dp = panel(row, "Fourier spectrum of the weights", "norm of each frequency's (cos k, sin k) coefficients per neuron (row 0: the constant). Outlined: each neuron's strongest frequency now.");
    const dgrid = el("div", { class: "grid" });
    dp.appendChild(dgrid);
    for (const side of ["in", "out"]) {
      const arr = fo["norms_" + side].data, size = Fq * n;
      const map = heatmap(dgrid, {
        id: "dft-" + side, title: "DFT of " + (side === "in" ? "W_input" : "W_output"), rows: Fq, cols: n,
        values: (t) => [t * size, arr], globalMax: maxAbs(arr, 0, arr.length), cmap: "seq",
        rowNames: (i) => String(i), colOrder: neuronOrder, colNames: (i) => String(i),
        cellMarks: side === "in" ? (t) => Array.from({ length: n }, (_, j) => [freqs[t * n + j], j]) : null,
        rowLabel: "frequency k", colLabel: "neuron", perFrame: perFrame, maxWidth: 360, maxHeight: 300,
      });
      panels.push(map.draw);
    }

    // --- sparsity numbers
    const S = fo.sparsity, names = S.names, vals = S.values.data, ns = names.length;
    const sp = panel(row, "Sparsity of the spectrum", "how concentrated the Fourier energy is (constant excluded); Gini and top-k share rise as the model generalises.");
    const sgrid0 = el("div", { class: "grid" });
    sp.appendChild(sgrid0);
    const table = el("table", { class: "numbers", id: "sparsity" });
    sgrid0.appendChild(table);
    const cellsByName = {};
    for (const name of names) {
      const td = el("td", { text: "" });
      cellsByName[name] = td;
      table.appendChild(el("tr", {}, [el("th", { text: name }), td]));
    }
    const shares = names.map((nm, i) => [nm, i]).filter(([nm]) => /gini|energy/.test(nm));
    const series = shares.map(([nm, i], k) => ({
      x: steps, y: Float32Array.from({ length: T }, (_, t) => vals[t * ns + i]), colour: PALETTE[k % PALETTE.length], label: nm, markDots: true,
      dash: nm.startsWith("out") ? [4, 2] : [],
    }));
    const splot = linePlot(sgrid0, { id: "sparsity-curve", width: 380, height: 210, yMin: 0, yMax: 1, series: series, onPick: pick, vlines: vlines.map((v) => ({ ...v, label: "" })) });
    panels.push((t) => {
      names.forEach((nm, i) => { cellsByName[nm].textContent = fmtNum(vals[t * ns + i]); });
      table.dataset.frame = String(t);
      splot.draw(steps[t]);
    });

    // --- stars: each final group's neurons at the group's frequency
    if (fo.groups.length) {
      const srow = el("div", { class: "row" });
      main.appendChild(srow);
      const stp = panel(srow, "Stars: neurons by final frequency group", "each neuron's (cos k, sin k) coefficients at its group's frequency k, joined in angle order: scattered while memorising, a regular star once generalised. Top: W_input, bottom: W_output.");
      const sgrid = el("div", { class: "grid" });
      stp.appendChild(sgrid);
      const views = [];
      for (const g of fo.groups) {
        const cell = el("div", { class: "cell" }, [el("div", { text: "k = " + g.freq + " (" + g.neurons.length + " neuron" + (g.neurons.length === 1 ? "" : "s") + ")" })]);
        sgrid.appendChild(cell);
        for (const side of ["in", "out"]) {
          const v = canvas(cell, 140, 140, "star-" + g.freq + "-" + side);
          const arr = fo["phase_" + side].data;
          const at = (t, j) => [arr[(t * n + j) * 2], arr[(t * n + j) * 2 + 1]];
          let rmax = 0;
          for (let t = 0; t < T; t++) for (const j of g.neurons) rmax = Math.max(rmax, Math.hypot(...at(t, j)));
          views.push({ v: v, g: g, at: at, rmax: rmax });
        }
      }
      panels.push((t) => {
        for (const { v, g, at, rmax } of views) {
          const pts = g.neurons.map((j) => at(t, j));
          const r = state.perFrame ? Math.max(1e-12, ...pts.map((q) => Math.hypot(q[0], q[1]))) : rmax;
          drawStar(v.ctx, 140, pts, g.neurons.map(String), r * 1.05);
          v.c.dataset.frame = String(t);
        }
      });
    }

    // --- logit waves
    if (fo.waves) {
      const wrow = el("div", { class: "row" });
      main.appendChild(wrow);
      const wp = panel(wrow, "Each group's logits: a wave in (a + b - c)", "a group's mean logit contribution at each d = (a + b - c) mod p, plotted at u = k d mod p (dots) and the fitted cosine (line). A group that computes cos(2πk(a+b-c)/p) draws one clean period.");
      const wgrid = el("div", { class: "grid" });
      wp.appendChild(wgrid);
      const [, G] = fo.waves.wave.shape;
      const wave = fo.waves.wave.data, fit = fo.waves.fit.data;
      const views = fo.groups.map((g, gi) => {
        const v = canvas(wgrid, 230, 150, "wave-" + g.freq);
        let lo = Infinity, hi = -Infinity;
        for (let t = 0; t < T; t++) for (let d = 0; d < p; d++) { const y = wave[(t * G + gi) * p + d]; if (y < lo) lo = y; if (y > hi) hi = y; }
        return { v: v, g: g, gi: gi, lo: lo, hi: hi };
      });
      panels.push((t) => {
        for (const { v, g, gi, lo, hi } of views) {
          drawWave(v, g.freq, p, wave, (t * G + gi) * p, fit, (t * G + gi) * 4, state.perFrame ? null : [lo, hi]);
          v.c.dataset.frame = String(t);
        }
      });
    }
  }

  function drawWave(v, k, p, wave, start, fit, fstart, range) {
    const g = v.ctx, W = v.w, H = v.h, m = { l: 46, r: 6, t: 16, b: 16 };
    let lo, hi;
    if (range) [lo, hi] = range;
    else { lo = Infinity; hi = -Infinity; for (let d = 0; d < p; d++) { lo = Math.min(lo, wave[start + d]); hi = Math.max(hi, wave[start + d]); } }
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    const X = (u) => m.l + (u / p) * (W - m.l - m.r), Y = (y) => m.t + (1 - (y - lo) / (hi - lo)) * (H - m.t - m.b);
    g.clearRect(0, 0, W, H);
    g.fillStyle = "#fff";
    g.fillRect(0, 0, W, H);
    g.strokeStyle = "#ccc";
    g.strokeRect(m.l, m.t, W - m.l - m.r, H - m.t - m.b);
    const [off, amp, phase, r2] = [fit[fstart], fit[fstart + 1], fit[fstart + 2], fit[fstart + 3]];
    g.font = SMALL;
    g.fillStyle = "#222";
    g.textAlign = "left";
    g.textBaseline = "alphabetic";
    g.fillText("k = " + k + ",  R² = " + (Number.isFinite(r2) ? r2.toFixed(2) : "–"), m.l, 11);
    g.fillStyle = "#555";
    g.textAlign = "right";
    g.textBaseline = "middle";
    g.fillText(fmtNum(hi - pad), m.l - 3, m.t + 4);
    g.fillText(fmtNum(lo + pad), m.l - 3, H - m.b - 4);
    g.textAlign = "center";
    g.textBaseline = "top";
    g.fillText("u = " + k + "(a+b-c) mod " + p, (m.l + W) / 2, H - m.b + 2);
    g.strokeStyle = "#000";
    g.setLineDash([4, 3]);
    g.lineWidth = 1;
    g.beginPath();
    for (let i = 0; i <= 120; i++) {
      const u = (i / 120) * p, y = off + amp * Math.cos((2 * Math.PI * u) / p + phase);
      if (i) g.lineTo(X(u), Y(y)); else g.moveTo(X(u), Y(y));
    }
    g.stroke();
    g.setLineDash([]);
    g.fillStyle = TRAIN;
    for (let d = 0; d < p; d++) {
      const u = (k * d) % p;
      g.beginPath();
      g.arc(X(u), Y(wave[start + d]), 2, 0, 2 * Math.PI);
      g.fill();
    }
  }

  // ------------------------------------------------------------------------------ the sweep page
  // The article's rule on each model's three numbers, as grok_lightning.outcome.outcome_class: NaN never
  // counts as fitted, a ratio must stay strictly below R.
  function classify(minTrain, minTest, maxRatio, L, R) {
    if (!(minTrain <= L)) return "fail";
    if (!(minTest <= L)) return "memorise";
    if (maxRatio < R) return "generalise";
    return "grok";
  }

  // grok_lightning.seed_features' comparison (seed_features.json): a table of the strongest features
  // and its figure, drawn by Python and carried as a data: URI.
  function seedFeatures(S, parent) {
    const row = el("div", { class: "row", id: "seed-features" });
    parent.appendChild(row);
    const p = panel(row, "Stuck vs generalising: " + S.generalised + " of " + S.models + " models generalised within " + fmtStep(S.budget) + " steps",
      "each model's features at initialisation and in a short re-training (name@step, " + fmtStep(S.retrain_steps || 0) + " steps), and of its training split (split_*). " +
      "AUC: how well the feature alone tells the fates apart (1: higher in the generalised models, 0: lower, 0.5: no difference); " +
      "p over all: how often shuffled fates give any feature a separation as large; " +
      "rho: rank correlation with the step the model generalised at (never: last). python -m grok_lightning.seed_features wrote it.");
    if (S.verdict) p.appendChild(el("div", { class: "sub", id: "seed-features-verdict", text: S.verdict }));
    const table = el("table", { class: "numbers", id: "seed-features-table" });
    table.appendChild(el("tr", {}, ["feature", "mean generalised", "mean not generalised", "AUC", "p over all", "rho"].map((h) => el("th", { text: h }))));
    for (const r of S.rows) {
      const cells = [r.feature, fmtNum(r.generalised), fmtNum(r.not_generalised), r.auc == null ? "–" : r.auc.toFixed(2), fmtNum(r.p_family), r.rho == null ? "–" : r.rho.toFixed(2)];
      table.appendChild(el("tr", {}, cells.map((t) => el("td", { text: t }))));
    }
    p.appendChild(el("div", { class: "scroll" }, [table]));
    if (S.figure) {
      const fp = panel(row, "The strongest features, model by model", "each dot one model; bars: each fate's median.");
      const img = el("img", { id: "seed-features-figure", src: S.figure, alt: "seed features by fate" });
      img.style.maxWidth = "100%";
      fp.appendChild(img);
    }
  }

  function sweepPage(D, root) {
    const M = D.models, K = M.id.length, OUT = D.outcomes;
    // The rule's numbers at each step of the step slider (models x steps); at the end results.csv's
    // own (a float64 history's numbers, where the slider's come from the float32 histories/).
    const S = D.at_steps, nCut = S ? S.steps.data.length : 0;
    const state = { L: D.thresholds.L, R: D.thresholds.R, selected: 0, classes: new Array(K), cut: nCut - 1 };
    const rule = (name, i) => (S && state.cut < nCut - 1 ? S[name].data[i * nCut + state.cut] : M[name].data[i]);
    const header = el("header", {}, [el("h1", { text: D.title + (D.task ? " (" + D.task + ")" : "") }), el("div", { class: "sub", text: D.description || "" }),
      el("div", { class: "sub", text: K + " models, " + D.cells.length + " cells; one square per model (seed)." })]);
    for (const n of D.notes || []) header.appendChild(el("div", { class: "note", text: n }));
    root.appendChild(header);
    const controls = el("div", { class: "controls" });
    root.appendChild(controls);
    // step "any": the sweep's own L and R (1e-5, 5e4) sit exactly on the sliders
    const logL = el("input", { id: "loss-threshold", type: "range", min: "-8", max: "0", step: "any", value: String(Math.log10(state.L)) });
    const logR = el("input", { id: "ratio-threshold", type: "range", min: "0", max: "8", step: "any", value: String(Math.log10(state.R)) });
    const lText = el("span", { class: "readout short", id: "L-value" }), rText = el("span", { class: "readout short", id: "R-value" });
    controls.append(el("label", {}, ["L (loss threshold) ", logL]), lText, el("label", {}, ["R (test/train ratio) ", logR]), rText);
    // The diagram as the models stood at a logged step: the rule over their losses up to it.
    const stepSlider = S ? el("input", { id: "step", type: "range", min: "0", max: String(nCut - 1), step: "1", value: String(nCut - 1) }) : null;
    const stepText = el("span", { class: "readout", id: "step-value" });
    if (S) controls.append(el("label", {}, ["step ", stepSlider]), stepText);
    const counts = el("div", { class: "controls counts", id: "counts" });
    root.appendChild(counts);
    const countSpans = {};
    for (const o of OUT) {
      countSpans[o] = el("span", { id: "count-" + o, text: "0" });
      counts.appendChild(el("span", { class: "c" }, [el("span", { class: "swatch", style: "background:" + D.colours[o] }), o + ": ", countSpans[o]]));
    }
    const main = el("main");
    root.appendChild(main);
    const drow = el("div", { class: "row" });
    main.appendChild(drow);
    const dp = panel(drow, "Phase diagram", "the article's rule with these thresholds: fail if the train loss never goes below L, memorise if the test loss never does, generalise if test/train loss stays below R, else grok" + (S ? ", over the logged steps up to the step slider's" : "") + ". Dark border: diverged. Click a cell for its models.");
    dp.style.minWidth = "420px";
    const pgrid = el("div", { class: "grid" });
    dp.appendChild(pgrid);
    const detail = el("div", { class: "row", id: "detail" });
    main.appendChild(detail);
    if (D.seed_features) seedFeatures(D.seed_features, main);

    const members = D.cells.map(() => []);
    M.cell.forEach((c, i) => members[c].push(i));
    const perCell = Math.max(1, ...members.map((m) => m.length));
    const cols = Math.ceil(Math.sqrt(perCell)), rows = Math.ceil(perCell / cols);
    const sq = perCell > 100 ? 6 : perCell > 16 ? 9 : 13, pitch = sq + 1;
    const cellW = cols * pitch + 8, cellH = rows * pitch + 8;
    const X = D.axes.x.values, Y = D.axes.y.values;
    const measure = document.createElement("canvas").getContext("2d");
    measure.font = FONT;
    const panelViews = D.axes.panels.map((title, pi) => {
      // the flag combination in full, one key=value per line; the panel is as wide as its title
      const lines = title ? title.split("\n") : [];
      const titleW = Math.max(0, ...lines.map((s) => Math.ceil(measure.measureText(s).width)));
      const m = { l: 64, t: 20 + 14 * lines.length, r: 8, b: 34 };
      const W = Math.max(150, m.l + X.length * cellW + m.r, 8 + titleW + 8), H = m.t + Y.length * cellH + m.b;
      const box = el("div", { class: "cell" });
      pgrid.appendChild(box);
      const v = canvas(box, W, H, "phase-" + pi);
      v.c.classList.add("clickable");
      v.c.addEventListener("click", (ev) => {
        const r = v.c.getBoundingClientRect();
        const xi = Math.floor((ev.clientX - r.left - m.l) / cellW), yi = Y.length - 1 - Math.floor((ev.clientY - r.top - m.t) / cellH);
        const c = D.cells.findIndex((cell) => cell.panel === pi && cell.x === xi && cell.y === yi);
        if (c >= 0) select(c);
      });
      return { v: v, m: m, lines: lines, W: W, H: H };
    });

    function cellOrigin(c) {
      const cell = D.cells[c], pv = panelViews[cell.panel];
      return [pv.m.l + cell.x * cellW + 4, pv.m.t + (Y.length - 1 - cell.y) * cellH + 4];
    }

    function drawDiagram() {
      const order = {};
      OUT.forEach((o, i) => { order[o] = i; });
      for (const pv of panelViews) {
        const g = pv.v.ctx;
        g.clearRect(0, 0, pv.W, pv.H);
        g.fillStyle = "#fff";
        g.fillRect(0, 0, pv.W, pv.H);
        g.font = FONT;
        g.fillStyle = "#222";
        g.textAlign = "left";
        g.textBaseline = "alphabetic";
        pv.lines.forEach((s, i) => g.fillText(s, 8, 14 + 14 * i));
        g.font = SMALL;
        g.fillStyle = "#444";
        g.textAlign = "center";
        g.textBaseline = "top";
        X.forEach((x, i) => g.fillText(x, pv.m.l + (i + 0.5) * cellW, pv.m.t + Y.length * cellH + 2));
        g.fillText(D.axes.x.label, pv.m.l + (X.length * cellW) / 2, pv.H - 13);
        g.textAlign = "right";
        g.textBaseline = "middle";
        Y.forEach((y, i) => g.fillText(y, pv.m.l - 4, pv.m.t + (Y.length - 1 - i + 0.5) * cellH));
        g.textAlign = "left";
        g.textBaseline = "alphabetic";
        g.fillText(D.axes.y.label, 4, pv.m.t - 6);  // above the y values: a one-row diagram is short
      }
      members.forEach((ids, c) => {
        const g = panelViews[D.cells[c].panel].v.ctx;
        const [x0, y0] = cellOrigin(c);
        const sorted = ids.slice().sort((a, b) => order[state.classes[a]] - order[state.classes[b]]);
        sorted.forEach((i, j) => {
          const x = x0 + (j % cols) * pitch, y = y0 + Math.floor(j / cols) * pitch;
          g.fillStyle = D.colours[state.classes[i]];
          g.fillRect(x, y, sq, sq);
          if (M.diverged[i]) {
            g.strokeStyle = D.colours.diverged;
            g.lineWidth = 1.5;
            g.strokeRect(x + 0.75, y + 0.75, sq - 1.5, sq - 1.5);
          }
        });
        if (c === state.selected) {
          g.strokeStyle = "#000";
          g.lineWidth = 2;
          g.strokeRect(x0 - 3, y0 - 3, cols * pitch + 5, rows * pitch + 5);
        }
      });
    }

    function classifyAll() {
      const tally = {};
      for (const o of OUT) tally[o] = 0;
      for (let i = 0; i < K; i++) {
        const c = classify(rule("min_train", i), rule("min_test", i), rule("max_ratio", i), state.L, state.R);
        state.classes[i] = c;
        tally[c]++;
      }
      for (const o of OUT) countSpans[o].textContent = String(tally[o]);
      if (S) stepText.textContent = "at step " + fmtStep(S.steps.data[state.cut]) + (state.cut === nCut - 1 ? " (the end)" : " of " + fmtStep(S.steps.data[nCut - 1]));
      lText.textContent = "L = " + state.L.toExponential(1);
      rText.textContent = "R = " + state.R.toExponential(1);
      return tally;
    }

    // A slider's log10 value -> the threshold, rounded to 12 significant digits so that 1e-5 is 1e-5.
    const fromLog = (v) => Number(Math.pow(10, Number(v)).toPrecision(12));
    function update() {
      state.L = fromLog(logL.value);
      state.R = fromLog(logR.value);
      classifyAll();
      drawDiagram();
      refreshCell();
    }
    logL.addEventListener("input", update);
    logR.addEventListener("input", update);
    if (S) stepSlider.addEventListener("input", () => { state.cut = Number(stepSlider.value); update(); });

    function select(c) {
      state.selected = c;
      drawDiagram();
      showCell(c);
    }

    // The selected cell: its models' curves (rebuilt when the thresholds move: colours follow the
    // classes) and a table whose class column is updated in place.
    let cellView = null;
    function showCell(c) {
      detail.textContent = "";
      const ids = members[c];
      const cell = D.cells[c];
      const where = [D.axes.panels[cell.panel].replace(/\n/g, ", "), D.axes.x.key ? D.axes.x.label + "=" + X[cell.x] : "", D.axes.y.key ? D.axes.y.label + "=" + Y[cell.y] : ""].filter(Boolean).join(", ");
      const p = panel(detail, "Cell " + (where || "(all models)") + ": " + ids.length + " model" + (ids.length === 1 ? "" : "s"),
        "train and test loss of each model in the cell (test " + (ids.length <= 40 ? "dashed" : "lighter") + "), coloured by its class at these thresholds" + (S ? " and step (the vertical line; the table's numbers are up to it)" : "") + ".");
      p.id = "cell-detail";
      p.dataset.cell = String(c);
      p.dataset.models = String(ids.length);
      const plotBox = el("div");
      p.appendChild(plotBox);
      const table = el("table", { class: "numbers", id: "cell-models" });
      const head = ["seed", "class", "min train loss", "min test loss", "max test/train", "memorised", "generalised"];
      if (D.freqs) head.push("neurons per learned frequency");
      table.appendChild(el("tr", {}, head.map((h) => el("th", { text: h }))));
      const classCells = [], ruleCells = [];
      for (const i of ids) {
        const cells = [String(M.seed[i]), "", "", "", "", M.memorise_step[i] == null ? "–" : fmtStep(M.memorise_step[i]), M.generalise_step[i] == null ? "–" : fmtStep(M.generalise_step[i])];
        if (D.freqs) cells.push(frequencyText(D.freqs[i]));
        const tds = cells.map((t) => el("td", { text: t }));
        if (D.freqs) tds[tds.length - 1].className = "left";
        classCells.push(tds[1]);
        ruleCells.push(tds.slice(2, 5));  // the rule's numbers at the slider's step
        table.appendChild(el("tr", {}, tds));
      }
      p.appendChild(el("div", { class: "scroll" }, [table]));
      if (D.freqs) p.appendChild(el("div", { class: "sub", id: "cell-frequencies", text: frequencySummary(ids) }));
      cellView = { ids: ids, plotBox: plotBox, classCells: classCells, ruleCells: ruleCells };
      refreshCell();
    }

    function refreshCell() {
      const { ids, plotBox, classCells, ruleCells } = cellView;
      ids.forEach((i, k) => {
        classCells[k].textContent = state.classes[i] + (M.diverged[i] ? " (diverged)" : "");
        ["min_train", "min_test", "max_ratio"].forEach((name, j) => { ruleCells[k][j].textContent = fmtNum(rule(name, i)); });
      });
      const CV = D.curves;
      if (!CV) return;
      plotBox.textContent = "";
      // one path per class and split (models joined with gaps): a cell of 450 seeds stays fast
      // and about 40k points in all (a canvas strokes ~1M points a second here)
      const merged = {};
      let curves = 0;
      const stride = Math.max(1, Math.ceil((ids.length * 2 * 300) / 40000));
      for (const i of ids) {
        const set = CV.set_of[i];
        if (set < 0) continue;
        const x = CV.step_sets[set].data, a = CV.offset.data[i], b = CV.offset.data[i + 1];
        for (const split of ["train", "test"]) {
          const key = state.classes[i] + "/" + split;
          const m = merged[key] || (merged[key] = { cls: state.classes[i], split: split, x: [], y: [] });
          const logs = CV[split].data;
          for (let j = 0; j < b - a; j = j === b - a - 1 ? b - a : Math.min(j + stride, b - a - 1)) {
            m.x.push(x[j]);
            m.y.push(Math.pow(10, logs[a + j]));
          }
          m.x.push(x[b - a - 1]);
          m.y.push(NaN);  // pen up between models
          curves++;
        }
      }
      // Dashes and transparency cost a software canvas ~5x on long paths: a big cell draws test
      // curves solid in a lighter tint instead.
      const fancy = ids.length <= 40;
      const testStyle = (colour) => (fancy ? { colour: colour, dash: [4, 2] } : { colour: tint(colour), dash: [] });
      const series = Object.values(merged).map((m) => ({
        x: m.x, y: m.y, width: 1.1, alpha: fancy ? 0.75 : 1,
        ...(m.split === "test" ? testStyle(D.colours[m.cls]) : { colour: D.colours[m.cls], dash: [] }),
      }));
      const plot = linePlot(plotBox, {
        id: "cell-curves", title: "loss (log scale)", logY: true, width: 620, height: 280, series: series,
        hlines: [{ y: state.L, colour: "#555", label: "L" }],
        legend: [{ colour: "#555", label: "train" }, { label: "test", ...testStyle("#555555") }, { colour: "#555", label: "L", dash: [2, 3] }],
      });
      plot.canvas.dataset.series = String(curves);
      if (S && state.cut < nCut - 1) plot.draw(S.steps.data[state.cut]);  // where the slider stands
    }

    function frequencyText(counts) {  // "k14×6 k35×5 ...": the most populated frequencies first
      if (!counts) return "–";
      const shown = counts.slice(0, 8).map(([f, c]) => "k" + f + "×" + c).join(" ");
      return counts.length > 8 ? shown + " … (" + (counts.length - 8) + " more)" : shown;
    }

    function frequencySummary(ids) {
      const models = {};
      for (const i of ids) for (const [f] of D.freqs[i] || []) models[f] = (models[f] || 0) + 1;
      const top = Object.entries(models).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 10);
      return "frequencies held by most models: " + top.map(([f, c]) => "k" + f + " (" + c + ")").join(", ");
    }

    classifyAll();
    drawDiagram();
    showCell(0);
    return {
      kind: "sweep",
      thresholds: () => ({ L: state.L, R: state.R }),
      step: () => (S ? S.steps.data[state.cut] : null),
      counts: () => { const t = {}; for (const o of OUT) t[o] = Number(countSpans[o].textContent); return t; },
      classes: () => state.classes.slice(),
      selected: () => state.selected,
      select: select,
      // the centre of a cell's first square, in its canvas's CSS pixels (tests click there)
      cellPoint: (c) => { const [x, y] = cellOrigin(c); return { id: "phase-" + D.cells[c].panel, x: x + sq / 2, y: y + sq / 2 }; },
    };
  }

  // ------------------------------------------------------------------------------ start
  const DATA = walk(JSON.parse(document.getElementById("explorer-data").textContent));
  const root = document.getElementById("app");
  window.explorer = DATA.kind === "sweep" ? sweepPage(DATA, root) : runPage(DATA, root);
})();
