// Stoker dashboard: confirmations, and live progress over server-sent events.
// Everything else (refreshing tables in place) is htmx attributes in the templates.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

let source = null;

function setProgress(data) {
  const box = document.querySelector("[data-events]");
  if (!box) return;
  const bar = box.querySelector("[data-job-progress]");
  const stage = box.querySelector("[data-job-stage]");
  const pct = box.querySelector("[data-job-pct]");
  if (typeof data.progress === "number" && isFinite(data.progress)) {
    bar.value = Math.max(0, Math.min(1, data.progress));
    pct.textContent = Math.round(bar.value * 100) + " %";
  }
  if (typeof data.stage === "string") stage.textContent = data.stage;  // text, never HTML
  if (bar.value >= 1 && window.htmx) {
    const live = document.getElementById("job-live");
    if (live && live.dataset.jobFinal === "no") setTimeout(() => htmx.trigger(live, "refresh"), 300);
  }
}

function connect() {
  const box = document.querySelector("[data-events]");
  if (!box || !window.EventSource) return;
  const live = document.getElementById("job-live");
  if (live && live.dataset.jobFinal === "yes") return;
  if (source && source.url.endsWith(box.dataset.events)) return;
  if (source) source.close();
  source = new EventSource(box.dataset.events);
  source.onmessage = (event) => {
    try { setProgress(JSON.parse(event.data)); } catch (e) { /* a bad event is ignored */ }
  };
}

document.addEventListener("DOMContentLoaded", connect);
// The job section is swapped by htmx refreshes: keep the stream, stop it once final.
document.addEventListener("htmx:afterSettle", () => {
  const live = document.getElementById("job-live");
  if (live && live.dataset.jobFinal === "yes" && source) { source.close(); source = null; }
});
