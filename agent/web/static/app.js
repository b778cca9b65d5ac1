// Serendip's page script: upload, chat (server-sent events over fetch), analyses, explorations, findings.
// Everything that came from a table or a model is put on the page with textContent, never as HTML.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main) return;

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function safeUrl(url) {
    // Only the server's own paths are linked or shown as images.
    return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : null;
  }

  function fmt(value) {
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
    if (Array.isArray(value)) return value.map(fmt).join(", ");
    if (value && typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (e) { /* not JSON */ }
    return `the server answered ${response.status}`;
  }

  // Read a text/event-stream response body and call onEvent(kind, data) for each event.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let kind = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) onEvent(kind, JSON.parse(data.join("\n")));
      }
    }
  }

  // ---------------------------------------------------------------- index page: upload
  function setupIndex() {
    const form = document.getElementById("upload-form");
    const input = document.getElementById("file-input");
    const status = document.getElementById("upload-status");
    const limit = Number(main.dataset.maxUpload || 0);

    async function upload(file) {
      status.className = "status";
      if (limit && file.size > limit) {
        status.className = "status error";
        status.textContent = `${file.name} is larger than the upload limit (${Math.round(limit / 1048576)} MB).`;
        return;
      }
      status.textContent = `Uploading ${file.name}…`;
      form.classList.add("busy");
      const data = new FormData();
      data.append("file", file, file.name);
      try {
        const response = await fetch("/api/tables", { method: "POST", body: data, credentials: "same-origin" });
        if (response.status === 201) {
          const table = await response.json();
          status.textContent = `Loaded ${table.rows} rows × ${table.columns} columns. Opening…`;
          window.location.assign(`/tables/${encodeURIComponent(table.id)}`);
          return;
        }
        status.className = "status error";
        status.textContent = await errorOf(response);
      } catch (e) {
        status.className = "status error";
        status.textContent = `The upload failed: ${e.message}`;
      } finally {
        form.classList.remove("busy");
      }
    }

    input.addEventListener("change", () => { if (input.files.length) upload(input.files[0]); });
    form.addEventListener("submit", (e) => { e.preventDefault(); if (input.files.length) upload(input.files[0]); });
    for (const name of ["dragenter", "dragover"]) {
      form.addEventListener(name, (e) => { e.preventDefault(); form.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      form.addEventListener(name, (e) => { e.preventDefault(); form.classList.remove("over"); });
    }
    form.addEventListener("drop", (e) => {
      const files = e.dataTransfer && e.dataTransfer.files;
      if (files && files.length) upload(files[0]);
    });

    document.querySelectorAll("[data-delete]").forEach((button) => {
      button.addEventListener("click", async () => {
        const item = button.closest("li");
        const name = item ? item.querySelector("a").textContent : "this table";
        if (!window.confirm(`Delete ${name} and its sessions and reports?`)) return;
        const response = await fetch(`/api/tables/${encodeURIComponent(button.dataset.delete)}`,
                                     { method: "DELETE", credentials: "same-origin" });
        if (response.ok) { if (item) item.remove(); }
        else { status.className = "status error"; status.textContent = await errorOf(response); }
      });
    });
  }

  // ---------------------------------------------------------------- table page
  function setupTable() {
    const tableId = main.dataset.tableId;
    const api = `/api/tables/${encodeURIComponent(tableId)}`;
    const log = document.getElementById("chat-log");
    const chatForm = document.getElementById("chat-form");
    const chatInput = document.getElementById("chat-input");
    const controls = Array.from(document.querySelectorAll(".action, #chat-send, #session-report"));
    let busy = false;

    function setBusy(value) {
      busy = value;
      for (const c of controls) c.disabled = value;
      log.setAttribute("aria-busy", value ? "true" : "false");
    }

    function scrollDown() { log.scrollTop = log.scrollHeight; }

    function addMessage(cls, text) {
      const node = el("div", { class: `msg ${cls}` }, el("p", { text }));
      log.append(node);
      scrollDown();
      return node;
    }

    function figuresBlock(urls) {
      const box = el("div", { class: "figures" });
      for (const url of urls || []) {
        const src = safeUrl(url);
        if (!src) continue;
        box.append(el("a", { href: src, target: "_blank", rel: "noopener" },
                      el("img", { src, alt: `figure ${src.split("/").pop()}`, loading: "lazy" })));
      }
      return box.childElementCount ? box : null;
    }

    const pending = new Map();

    function toolStarted(ev) {
      const args = Object.keys(ev.arguments || {}).length ? fmt(ev.arguments) : "";
      const node = el("div", { class: "msg tool running", "data-tool": ev.tool },
                      el("p", { class: "tool-head" }, el("strong", { text: ev.tool }), args ? ` ${args}` : "",
                         el("span", { class: "meta", text: " running…" })));
      pending.set(ev.call_id, node);
      log.append(node);
      scrollDown();
    }

    function toolFinished(ev) {
      let node = pending.get(ev.call_id);
      if (!node) { node = el("div", { class: "msg tool", "data-tool": ev.tool }); log.append(node); }
      pending.delete(ev.call_id);
      node.replaceChildren();
      node.className = `msg tool ${ev.ok ? "ok" : "failed"}`;
      node.dataset.tool = ev.tool;
      const args = Object.keys(ev.arguments || {}).length ? ` ${fmt(ev.arguments)}` : "";
      node.append(el("p", { class: "tool-head" }, el("strong", { text: ev.tool }), args,
                     el("span", { class: "meta", text: ` ${ev.result_id || ""} · ${fmt(ev.elapsed_s || 0)} s` })));
      if (!ev.ok) node.append(el("p", { class: "error", text: ev.error || "the call failed" }));
      const numbers = Object.entries(ev.key_numbers || {});
      if (numbers.length) {
        const list = el("dl", { class: "numbers" });
        for (const [key, value] of numbers) list.append(el("dt", { text: key }), el("dd", { text: fmt(value) }));
        node.append(list);
      }
      if (ev.candidates && ev.candidates.length) {
        node.append(el("p", { class: "meta", text: `candidates: ${ev.candidates.join(", ")}` }));
      }
      const figs = figuresBlock(ev.figures);
      if (figs) node.append(figs);
      scrollDown();
    }

    let streaming = null;

    function onEvent(kind, ev) {
      if (kind === "tool_started") toolStarted(ev);
      else if (kind === "tool_finished") toolFinished(ev);
      else if (kind === "text_delta") {
        if (!streaming) streaming = addMessage("assistant", "");
        streaming.querySelector("p").textContent += ev.text;
        scrollDown();
      } else if (kind === "answer") {
        const node = streaming && ev.streamed ? streaming : addMessage(`assistant ${ev.answered ? "" : "hint"}`, ev.text);
        if (streaming && ev.streamed) node.querySelector("p").textContent = ev.text;
        if (ev.evidence && ev.evidence.length) node.append(el("p", { class: "meta", text: `evidence: ${ev.evidence.join(", ")}` }));
        const figs = figuresBlock(ev.figures);
        if (figs) node.append(figs);
        streaming = null;
      } else if (kind === "notice") {
        addMessage(`notice ${ev.level}`, ev.text);
      } else if (kind === "help") {
        const node = addMessage("system", "Commands:");
        const list = el("dl", { class: "numbers" });
        for (const [cmd, what] of ev.commands || []) list.append(el("dt", { text: cmd }), el("dd", { text: what }));
        node.append(list);
      } else if (kind === "report") {
        const node = addMessage("system", `Report written (${ev.n_findings} findings): `);
        const href = safeUrl(ev.report_url);
        if (href) node.querySelector("p").append(el("a", { href, target: "_blank", rel: "noopener", text: "open the report" }));
        refreshFindings();
      } else if (kind === "findings") {
        renderFindings(ev.findings || [], null, null);
      } else if (kind === "end") {
        renderSession(ev.findings || []);
      }
    }

    async function send(line, echo) {
      if (busy) return;
      setBusy(true);
      if (echo) addMessage("user", line);
      streaming = null;
      try {
        const response = await fetch(`${api}/ask/stream`, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
          body: JSON.stringify({ question: line }),
        });
        if (!response.ok) {
          const retry = response.headers.get("Retry-After");
          addMessage("notice error", (await errorOf(response)) + (retry ? ` (retry in ${retry} s)` : ""));
          return;
        }
        await readEvents(response, onEvent);
      } catch (e) {
        addMessage("notice error", `The request failed: ${e.message}`);
      } finally {
        setBusy(false);
        refreshFindings();
      }
    }

    chatForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const line = chatInput.value.trim();
      if (!line) return;
      chatInput.value = "";
      send(line, true);
    });
    document.querySelectorAll(".action").forEach((button) => {
      button.addEventListener("click", () => send(button.dataset.command, true));
    });

    // ---------------------------------------------------------------- findings
    const findingsBox = document.getElementById("findings");
    const reportsBox = document.getElementById("reports");
    let sessionFindings = [];
    let sessionReport = null;
    let lastRuns = [];

    function findingItem(f) {
      const stats = f.stats || {};
      const bits = [];
      if (stats.q_value !== undefined && stats.q_value !== null) bits.push(`q=${fmt(stats.q_value)}`);
      if (stats.effect !== undefined && stats.effect !== null) bits.push(`effect ${fmt(stats.effect)}`);
      if (stats.n_groups) bits.push(`${stats.n_groups} groups`);
      if (stats.n_flagged) bits.push(`${stats.n_flagged} flagged`);
      const item = el("li", { class: `finding kind-${f.kind || "other"}` },
                      el("span", { class: "badge", text: f.kind || "" }), " ",
                      el("strong", { text: `${f.id || ""} ${f.title || ""}` }),
                      bits.length ? el("span", { class: "meta", text: ` (${bits.join(", ")})` }) : null);
      if (f.summary) item.append(el("p", { class: "summary", text: f.summary }));
      return item;
    }

    function renderFindings(list, heading, reportUrl) {
      const block = el("div", { class: "finding-block" });
      if (heading) block.append(el("h3", { text: heading }));
      if (list.length) {
        const ol = el("ol", { class: "findings" });
        for (const f of list) ol.append(findingItem(f));
        block.append(ol);
      } else {
        block.append(el("p", { class: "help", text: "No findings passed the run-wide thresholds." }));
      }
      const href = safeUrl(reportUrl);
      if (href) block.append(el("p", {}, el("a", { href, target: "_blank", rel: "noopener", class: "report-link", text: "Open the full report" })));
      return block;
    }

    function renderSession(list) { sessionFindings = list; drawFindings(); }

    function drawFindings() {
      findingsBox.replaceChildren();
      if (!sessionFindings.length && !lastRuns.some((r) => r.status !== "running")) {
        findingsBox.append(el("p", { class: "help", id: "findings-empty", text: "No findings yet: run an analysis or an exploration." }));
      }
      if (sessionFindings.length) findingsBox.append(renderFindings(sessionFindings, "This session", sessionReport));
      reportsBox.replaceChildren();
      for (const run of lastRuns) {
        if (run.status === "running") continue;
        const title = `Exploration ${run.id}${run.goal ? ` — ${run.goal}` : ""} (${run.status})`;
        reportsBox.append(renderFindings(run.findings || [], title, run.report_url));
      }
    }

    async function refreshFindings() {
      try {
        const response = await fetch(`${api}/findings`, { credentials: "same-origin" });
        if (!response.ok) return;
        const data = await response.json();
        sessionFindings = data.session || [];
        lastRuns = data.runs || [];
        sessionReport = data.session_report_url;
        drawFindings();
      } catch (e) { /* the next action refreshes */ }
    }

    document.getElementById("session-report").addEventListener("click", () => send("/report", true));

    // ---------------------------------------------------------------- explorations
    const exploreForm = document.getElementById("explore-form");
    const exploreButton = document.getElementById("explore-button");
    const progress = document.getElementById("explore-progress");
    const progressStatus = document.getElementById("explore-status");
    const progressLog = document.getElementById("explore-log");

    function follow(run) {
      progress.hidden = false;
      exploreButton.disabled = true;
      progressStatus.textContent = `Exploration ${run.id} running…`;
      progressLog.replaceChildren();
      const source = new EventSource(safeUrl(run.events_url));
      const line = (text) => { progressLog.append(el("li", { text })); while (progressLog.childElementCount > 12) progressLog.firstElementChild.remove(); };
      for (const kind of ["started", "step", "done"]) {
        source.addEventListener(kind, (e) => { const ev = JSON.parse(e.data); line(`[${fmt(ev.elapsed_s)} s] ${ev.text}`); });
      }
      source.addEventListener("end", (e) => {
        const ev = JSON.parse(e.data);
        source.close();
        exploreButton.disabled = false;
        progressStatus.replaceChildren(`Exploration ${run.id} ${ev.status}${ev.reason ? `: ${ev.reason}` : ""}` +
                                       (ev.n_findings !== undefined ? ` — ${ev.n_findings} findings. ` : ". "));
        const href = safeUrl(ev.report_url);
        if (href) progressStatus.append(el("a", { href, target: "_blank", rel: "noopener", id: "explore-report", text: "Open the report" }));
        refreshFindings();
      });
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) { exploreButton.disabled = false; }
      };
    }

    exploreForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      exploreButton.disabled = true;
      try {
        const response = await fetch(`${api}/explore`, {
          method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ goal: document.getElementById("explore-goal").value }),
        });
        if (response.status !== 202) {
          progress.hidden = false;
          progressStatus.textContent = await errorOf(response);
          exploreButton.disabled = false;
          return;
        }
        follow(await response.json());
      } catch (err) {
        progress.hidden = false;
        progressStatus.textContent = `The request failed: ${err.message}`;
        exploreButton.disabled = false;
      }
    });

    refreshFindings().then(() => {
      const running = lastRuns.find((r) => r.status === "running");
      if (running) follow(running);
    });
  }

  if (main.dataset.page === "index") setupIndex();
  if (main.dataset.page === "table") setupTable();
})();
