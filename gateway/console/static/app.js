// The console: sign in with an API key, price and submit a document, watch its pages finish,
// look at each page's boxes, download the result, manage jobs, see balance and usage.
import { ApiError, blob, json, session } from "./api.js";
import { usageChart } from "./chart.js";
import { bindKeys, clearPage, hasCells, showPage } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const FORMATS = ["json", "markdown", "text", "hocr", "alto", "pdf"];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const state = { file: null, quoteId: null, job: null, watching: null, page: null };

function message(error) {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  return error && error.message ? error.message : String(error);
}

function level() {
  return document.querySelector("input[name=level]:checked").value;
}

// --- Sign in -------------------------------------------------------------------------------

async function signIn(key) {
  await json("/v1/balance", { key }); // 401 for an unknown key
  session.key = key;
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  $("account").hidden = false;
  await Promise.all([refreshBalance(), refreshJobs(), refreshUsage()]);
}

function signOut() {
  session.clear();
  state.watching = null;
  location.reload();
}

// --- Account ---------------------------------------------------------------------------------

async function refreshBalance() {
  const b = await json("/v1/balance");
  $("balance").textContent =
    `${b.credits_available} credits available, ${b.credits_reserved} reserved (plan ${b.plan})`;
}

async function refreshUsage() {
  const usage = await json("/v1/usage");
  $("usage-chart").replaceChildren(usageChart(usage));
}

// --- A new document --------------------------------------------------------------------------

function form(withQuote) {
  const data = new FormData();
  data.append("file", state.file, state.file.name);
  data.append("mode", $("mode").value);
  const cap = $("max-credits").value.trim();
  if (cap) data.append("max_credits", cap);
  if (withQuote && state.quoteId) data.append("quote_id", state.quoteId);
  return data;
}

async function quote() {
  state.quoteId = null;
  $("submit").disabled = true;
  $("upload-error").textContent = "";
  if (!state.file) return;
  $("quote").textContent = "Pricing...";
  try {
    const q = await json("/v1/quote", { method: "POST", body: form(false) });
    state.quoteId = q.quoteId;
    const box = $("quote");
    box.replaceChildren();
    const total = document.createElement("p");
    total.textContent = `Quote: ${q.credits} credits for ${q.pageCount} page${q.pageCount === 1 ? "" : "s"}`;
    box.appendChild(total);
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const h of ["page", "tier", "credits", "read by"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const p of q.pages.slice(0, 50)) {
      const row = body.insertRow();
      row.title = p.reason;
      for (const v of [p.pageNumber, p.tier, p.credits, p.cached ? "cache" : p.provider]) {
        row.insertCell().textContent = String(v);
      }
    }
    box.appendChild(t);
    $("submit").disabled = false;
  } catch (error) {
    $("quote").textContent = "";
    $("upload-error").textContent = message(error);
  }
}

function chooseFile(file) {
  state.file = file || null;
  $("file-name").textContent = file ? `${file.name} (${Math.ceil(file.size / 1024)} kB)` : "";
  quote();
}

async function submit() {
  $("submit").disabled = true;
  $("upload-error").textContent = "";
  try {
    const job = await json("/v1/ocr", { method: "POST", body: form(true) });
    state.file = null;
    state.quoteId = null;
    $("file-input").value = "";
    $("file-name").textContent = "";
    $("quote").textContent = `Submitted: ${job.pageCount} pages, ${job.creditsReserved} credits reserved.`;
    refreshBalance().catch(() => {});
    openJob(job.jobId);
  } catch (error) {
    $("upload-error").textContent = message(error);
    $("submit").disabled = !state.quoteId;
  }
}

// --- Jobs --------------------------------------------------------------------------------------

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

let jobsTimer = null;

async function refreshJobs() {
  clearTimeout(jobsTimer);
  const list = await json("/v1/jobs?limit=20");
  const body = $("jobs-body");
  body.replaceChildren();
  for (const job of list.jobs) {
    const name = job.file_name || job.id.slice(0, 8);
    const row = body.insertRow();
    row.dataset.jobId = job.id;
    if (state.job && state.job.id === job.id) row.className = "open";
    const open = document.createElement("a");
    open.href = "#";
    open.textContent = name;
    open.addEventListener("click", (e) => { e.preventDefault(); openJob(job.id); });
    row.insertCell().appendChild(open);
    const status = row.insertCell();
    status.textContent = job.status;
    status.className = `status-${job.status}`;
    row.insertCell().textContent = `${job.pages_processed}/${job.page_count}`;
    row.insertCell().textContent = TERMINAL.has(job.status) ? String(job.credits_used) : `${job.credits_reserved} held`;
    const actions = row.insertCell();
    if (!TERMINAL.has(job.status)) {
      actions.appendChild(button("Cancel", `Cancel ${name}`, () => act(`/v1/jobs/${job.id}/cancel`, "POST")));
    }
    actions.appendChild(button("Delete", `Delete ${name}`, () => act(`/v1/jobs/${job.id}`, "DELETE", job.id)));
  }
  if (list.jobs.some((job) => !TERMINAL.has(job.status))) {
    // while some job runs, its progress shows here too
    jobsTimer = setTimeout(() => refreshJobs().catch(() => {}), 3000);
  }
}

async function act(path, method, deleted) {
  try {
    await json(path, { method });
    if (deleted && state.job && state.job.id === deleted) closeJob();
    await Promise.all([refreshJobs(), refreshBalance()]);
  } catch (error) {
    $("job-status").textContent = message(error);
  }
}

function closeJob() {
  state.job = null;
  state.watching = null;
  $("job-title").textContent = "No job open";
  $("job-status").textContent = "";
  $("job-tools").hidden = true;
  $("downloads").hidden = true;
  clearPage();
}

// --- One job, watched live ---------------------------------------------------------------------

async function openJob(jobId) {
  const token = {};
  state.watching = token;
  state.page = null;
  clearPage();
  $("downloads").hidden = true;
  let wait = 0;
  while (state.watching === token) {
    let job;
    try {
      job = await json(`/v1/jobs/${jobId}${wait ? `?wait=${wait}` : ""}`);
    } catch (error) {
      $("job-status").textContent = message(error);
      return;
    }
    if (state.watching !== token) return;
    state.job = job;
    await render(job);
    if (TERMINAL.has(job.status)) {
      refreshJobs().catch(() => {});
      refreshBalance().catch(() => {});
      refreshUsage().catch(() => {});
      return;
    }
    wait = 25; // long-poll: the server answers as soon as the job changes
  }
}

async function render(job) {
  $("job-title").textContent = `Job ${job.id.slice(0, 8)}`;
  $("job-status").textContent = `${job.status}: ${job.pages_processed} of ${job.page_count} pages read, `
    + `${job.credits_used} credits used, ${job.credits_reserved} reserved`
    + (job.error ? ` (${job.error.code}: ${job.error.message})` : "");
  document.querySelectorAll("#jobs-body tr").forEach((row) => {
    row.className = row.dataset.jobId === job.id ? "open" : "";
  });
  $("downloads").hidden = !TERMINAL.has(job.status);
  const select = $("page-select");
  const known = new Set([...select.options].map((o) => Number(o.value)));
  if (select.dataset.job !== job.id) {
    select.replaceChildren();
    known.clear();
    select.dataset.job = job.id;
  }
  for (const page of job.results) {
    if (!known.has(page.page_number)) {
      select.add(new Option(`${page.page_number}${page.status === "failed" ? " (failed)" : ""}`, String(page.page_number)));
    }
  }
  $("job-tools").hidden = job.results.length === 0;
  if (job.results.length && state.page === null) {
    state.page = job.results[0].page_number;
    select.value = String(state.page);
  }
  await showCurrent();
}

async function showCurrent() {
  const job = state.job;
  if (!job || state.page === null) return;
  const page = job.results.find((p) => p.page_number === state.page);
  if (!page) return;
  const cells = document.querySelector("input[name=level][value=cells]");
  cells.disabled = !hasCells(page);
  if (cells.disabled && cells.checked) document.querySelector("input[name=level][value=blocks]").checked = true;
  try {
    await showPage(job.id, page, level());
  } catch (error) {
    $("job-status").textContent = message(error);
  }
}

async function download(fmt) {
  const job = state.job;
  if (!job) return;
  try {
    const { blob: file, name } = await blob(`/v1/jobs/${job.id}/result?format=${fmt}`);
    const url = URL.createObjectURL(file);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    $("job-status").textContent = message(error);
  }
}

// --- Wiring ------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    try {
      await signIn($("api-key").value.trim());
      $("api-key").value = "";
    } catch (error) {
      session.clear();
      $("signin-error").textContent = error instanceof ApiError && error.status === 401
        ? "That key is not valid." : message(error);
    }
  });
  $("sign-out").addEventListener("click", signOut);
  const zone = $("drop-zone");
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); }
  });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    if (e.dataTransfer.files.length) chooseFile(e.dataTransfer.files[0]);
  });
  $("file-input").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  $("mode").addEventListener("change", quote);
  $("max-credits").addEventListener("change", quote);
  $("submit").addEventListener("click", submit);
  $("refresh-jobs").addEventListener("click", () => refreshJobs().catch((e) => { $("job-status").textContent = message(e); }));
  $("page-select").addEventListener("change", (e) => { state.page = Number(e.target.value); showCurrent(); });
  document.querySelectorAll("input[name=level]").forEach((r) => r.addEventListener("change", showCurrent));
  for (const fmt of FORMATS) {
    const b = button(fmt, `Download the result as ${fmt}`, () => download(fmt));
    b.dataset.format = fmt;
    $("downloads").appendChild(b);
  }
  bindKeys();
}

wire();
if (session.key) {
  signIn(session.key).catch(() => { session.clear(); });
}
