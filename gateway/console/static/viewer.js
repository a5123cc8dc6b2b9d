// The page view: the preview image with the result's boxes drawn over it (blocks, lines, words
// or table cells), colored by confidence; hovering, clicking or the arrow keys select a box and
// show its text. Beside it: what the pipeline did with the page.
import { blob } from "./api.js";

const $ = (id) => document.getElementById(id);
let previewUrl = null;
let shown = null; // {jobId, page}
let boxes = [];
let selected = -1;

export function confidenceColor(confidence) {
  const c = Math.max(0, Math.min(1, Number(confidence ?? 0)));
  return `hsl(${Math.round(c * 120)} 80% 38%)`;
}

// Every box of a level, in reading order: {geometry, text, confidence, kind}.
export function boxesOf(page, level) {
  const blocks = page.content_blocks || [];
  if (level === "blocks") {
    return blocks.map((b) => ({ geometry: b.geometry, text: b.text, confidence: b.confidence, kind: b.type }));
  }
  const lines = blocks.flatMap((b) => b.lines || []);
  if (level === "lines") {
    return lines.map((l) => ({ geometry: l.geometry, text: l.text, confidence: l.confidence, kind: "line" }));
  }
  if (level === "words") {
    return lines.flatMap((l) => l.words || []).map((w) => ({
      geometry: w.geometry, text: w.text, confidence: w.confidence, kind: "word",
    }));
  }
  return blocks.filter((b) => b.table && Array.isArray(b.table.cells)).flatMap((b) =>
    b.table.cells.filter((c) => c.geometry).map((c) => ({
      geometry: c.geometry, text: c.text ?? "", confidence: c.confidence ?? b.confidence, kind: "cell",
    })));
}

export function hasCells(page) {
  return boxesOf(page, "cells").length > 0;
}

function pct(v) { return `${(v * 100).toFixed(4)}%`; }

function select(index) {
  boxes.forEach((b) => b.el.classList.remove("selected"));
  selected = index;
  const box = boxes[index];
  if (!box) { $("selection").textContent = ""; return; }
  box.el.classList.add("selected");
  const conf = box.confidence === undefined || box.confidence === null ? "" : ` (confidence ${Number(box.confidence).toFixed(2)})`;
  $("selection").textContent = `${box.kind} ${index + 1} of ${boxes.length}${conf}:\n${box.text}`;
}

export function drawBoxes(page, level) {
  const overlay = $("overlay");
  overlay.replaceChildren();
  boxes = boxesOf(page, level).map((box, index) => {
    const el = document.createElement("div");
    el.className = `box box-${level}` + (box.kind === "table" ? " table-block" : "");
    el.dataset.level = level;
    el.dataset.index = String(index);
    const g = box.geometry;
    Object.assign(el.style, {
      left: pct(g.x), top: pct(g.y), width: pct(g.width), height: pct(g.height),
      borderColor: confidenceColor(box.confidence),
    });
    el.title = box.text;
    el.addEventListener("mouseenter", () => select(index));
    el.addEventListener("click", () => select(index));
    overlay.appendChild(el);
    return { ...box, el };
  });
  overlay.dataset.count = String(boxes.length);
  selected = -1;
  $("selection").textContent = boxes.length
    ? `${boxes.length} ${level}: hover or click a box, or focus the page and use the arrow keys.`
    : `No ${level} on this page.`;
}

export function bindKeys() {
  $("overlay").addEventListener("keydown", (event) => {
    if (!boxes.length) return;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") {
      select((selected + 1) % boxes.length);
    } else if (event.key === "ArrowLeft" || event.key === "ArrowUp") {
      select((selected - 1 + boxes.length) % boxes.length);
    } else {
      return;
    }
    event.preventDefault();
  });
}

function table(rows) {
  const t = document.createElement("table");
  for (const [k, v] of rows) {
    const tr = t.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = k;
    tr.appendChild(th);
    tr.insertCell().textContent = v;
  }
  return t;
}

function heading(text) {
  const h = document.createElement("h3");
  h.textContent = text;
  return h;
}

function fmt(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function showDetails(page) {
  const out = $("page-details");
  out.replaceChildren();
  const meta = page.pipeline_metadata || {};
  const doc = page.document_metadata || {};
  out.appendChild(heading(`Page ${page.page_number}: ${page.status}`));
  if (page.error) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = `${page.error.code}: ${page.error.message}`;
    out.appendChild(p);
  }
  out.appendChild(table([
    ["tier", fmt(meta.tier)], ["credits", fmt(meta.credits)], ["provider", fmt(meta.provider_used)],
    ["complexity", fmt(meta.complexity_score)], ["capped", fmt(meta.capped)], ["cached", fmt(meta.cached)],
    ["engine", fmt(doc.source_model)], ["confidence", fmt(doc.global_confidence)],
    ["size", doc.page_dimensions ? `${doc.page_dimensions.width} x ${doc.page_dimensions.height} px` : "-"],
    ["rotation", fmt(doc.rotation_deg)],
  ]));
  if (meta.provider_reason) {
    out.appendChild(heading("Reason"));
    const p = document.createElement("p");
    p.className = "reason";
    p.textContent = meta.provider_reason + (meta.escalation ? ` (${meta.escalation})` : "");
    out.appendChild(p);
  }
  if (meta.attempts && meta.attempts.length) {
    out.appendChild(heading("Attempts"));
    out.appendChild(table(meta.attempts.map((a) => [
      a.provider, `confidence ${fmt(a.confidence)}, ${fmt(a.seconds)} s${a.error ? `, ${a.error}` : ""}`,
    ])));
  }
  if (meta.timings) {
    out.appendChild(heading("Timings (ms)"));
    out.appendChild(table(Object.entries(meta.timings).map(([k, v]) => [k, fmt(v)])));
  }
  if (meta.features) {
    out.appendChild(heading("Features"));
    out.appendChild(table(Object.entries(meta.features).map(([k, v]) => [k, fmt(v)])));
  }
}

// Show page `page` of job `jobId`: load its preview (once per page), then its boxes.
export async function showPage(jobId, page, level) {
  $("stage").hidden = false;
  showDetails(page);
  const img = $("page-image");
  if (!shown || shown.jobId !== jobId || shown.page !== page.page_number) {
    shown = { jobId, page: page.page_number };
    $("overlay").replaceChildren();
    if (page.status !== "completed") {
      img.removeAttribute("src");
      img.alt = `Page ${page.page_number} was not read`;
      return;
    }
    const { blob: png } = await blob(`/v1/jobs/${jobId}/pages/${page.page_number}/preview`);
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(png);
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new Error("the preview could not be shown"));
      img.src = previewUrl;
    });
    img.alt = `Page ${page.page_number} as read`;
  }
  drawBoxes(page, level);
}

export function clearPage() {
  shown = null;
  boxes = [];
  $("stage").hidden = true;
  $("overlay").replaceChildren();
  $("page-details").replaceChildren();
  $("selection").textContent = "";
}
