// mouthpiece studio: a plain script over the public HTTP API (no framework, no build step).
//
// Tokens: the API key is exchanged at POST v1/auth/token and then forgotten. The access token
// lives only in memory; the refresh token is kept in sessionStorage (this tab only) so a reload
// does not sign out. Both are rotated through v1/auth/refresh shortly before the access token
// expires. Progress comes from the job's server-sent events, read with fetch() so the token
// travels in a header (EventSource cannot send one), with polling as the fallback.
"use strict";

(() => {
  const REFRESH_STORAGE_KEY = "mouthpiece.refresh_token";
  const REFRESH_MARGIN_MS = 60_000; // renew the access token this long before it expires
  const POLL_MS = [1000, 1000, 2000, 2000, 3000]; // polling back-off, last value repeats
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const HISTORY_LIMIT = 25;
  const RESOLUTIONS = [128, 256, 384, 512, 576, 640, 768, 896, 1024, 1280, 1536, 2048];
  const STATUS_WORDS = {
    queued: "Queued", running: "Generating", succeeded: "Ready", failed: "Failed", canceled: "Canceled",
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    account: $("account"), userName: $("user-name"), planBadge: $("plan-badge"), signOut: $("sign-out"),
    topQuotaText: $("topbar-quota-text"), topQuotaBar: $("topbar-quota-bar"),
    signinView: $("signin-view"), signinForm: $("signin-form"), apiKey: $("api-key"),
    signinError: $("signin-error"), signinButton: $("signin-button"),
    appView: $("app-view"), main: $("main"),
    jobForm: $("job-form"), image: $("image"), imageDrop: $("image-drop"), imagePreview: $("image-preview"),
    audio: $("audio"), audioDrop: $("audio-drop"), voiceDrop: $("voice-drop"),
    audioPreview: $("audio-preview"), audioHint: $("audio-hint"), transcript: $("transcript"),
    audioGroup: $("audio-group"), textGroup: $("text-group"), text: $("text"), textCount: $("text-count"),
    voice: $("voice"), lang: $("lang"), settings: $("settings"), settingsSummary: $("settings-summary"),
    minResolution: $("min_resolution"), formError: $("form-error"), costHint: $("cost-hint"),
    submit: $("submit-button"), planLimits: $("plan-limits"),
    jobStatus: $("job-status"), jobEmpty: $("job-empty"), jobView: $("job-view"), jobProgress: $("job-progress"),
    jobBar: $("job-bar"), jobMessage: $("job-message"), jobError: $("job-error"), jobResult: $("job-result"),
    video: $("result-video"), download: $("download-link"), resultMeta: $("result-meta"),
    warnings: $("result-warnings"), jobId: $("job-id"), cancel: $("cancel-button"),
    quotaLeft: $("quota-left"), quotaLimit: $("quota-limit"), quotaMeter: $("quota-meter"), quotaBar: $("quota-bar"),
    quotaReset: $("quota-reset"), limits: $("limits"),
    historyBody: $("history-body"), historyEmpty: $("history-empty"), historyError: $("history-error"),
    historyRefresh: $("history-refresh"), historyTable: $("history-table"),
  };

  const session = { access: null, refresh: null, renewAt: 0, timer: null, refreshing: null };
  const state = {
    me: null, job: null, watch: null, audioSeconds: null, idempotency: null, previewUrls: [],
    fields: {}, // the job form's fields as the API describes them (GET openapi.json)
  };

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const apiUrl = (path) => new URL(path, document.baseURI).toString();

  /** The API's JSON error ({"error": {code, message}}) as a sentence a person can act on. */
  async function errorFrom(response) {
    let code = `http_${response.status}`;
    let message = "";
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || "";
      } else if (body && body.detail) { // a framework-level error that bypassed the API's handler
        message = typeof body.detail === "string" ? body.detail
          : body.detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
      }
    } catch (_) { /* not JSON: keep the status line */ }
    if (!message) message = fallbackMessage(response.status);
    const retry = Number(response.headers.get("Retry-After"));
    if (response.status === 429 && retry > 0 && retry <= 300) { // longer waits are explained by the message
      message = `${message.replace(/[.\s]*$/, ".")} Try again in ${retry} s.`;
    }
    return new ApiError(response.status, code, message);
  }

  function fallbackMessage(status) {
    if (status === 401) return "Not signed in, or the session has expired.";
    if (status === 403) return "Your account may not do that.";
    if (status === 404) return "Not found.";
    if (status === 413) return "The upload is too large.";
    if (status === 429) return "Too many requests.";
    if (status >= 500) return "The server had a problem. Please try again in a moment.";
    return `Request failed (HTTP ${status}).`;
  }

  async function send(path, options) {
    try {
      return await fetch(apiUrl(path), { cache: "no-store", credentials: "same-origin", ...options });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", "Cannot reach the server. Check the connection and try again.");
    }
  }

  /** An authenticated API call; renews the token first if it is about to expire, once more on 401. */
  async function api(path, { method = "GET", body, headers = {}, signal, retried = false } = {}) {
    if (!session.access) throw new ApiError(401, "unauthenticated", "Please sign in.");
    if (Date.now() >= session.renewAt) await refreshTokens(); // the timer may have been throttled
    const response = await send(path, {
      method, body, signal, headers: { ...headers, Authorization: `Bearer ${session.access}` },
    });
    if (response.status === 401 && !retried && session.refresh) {
      await refreshTokens();
      return api(path, { method, body, headers, signal, retried: true });
    }
    if (!response.ok) {
      const err = await errorFrom(response);
      if (response.status === 401) signOut("Your session has ended. Please sign in again.");
      throw err;
    }
    return response;
  }

  const apiJson = async (path, options) => (await api(path, options)).json();

  // ---------------------------------------------------------------- tokens

  function setTokens(tokens) {
    session.access = tokens.access_token;
    session.refresh = tokens.refresh_token || session.refresh;
    const ttlMs = Math.max(1, Number(tokens.expires_in) || 900) * 1000;
    // Renew a minute before expiry, and never later than 80 % of the token's life.
    const renewIn = Math.max(500, Math.min(ttlMs - REFRESH_MARGIN_MS, ttlMs * 0.8));
    session.renewAt = Date.now() + renewIn;
    try { sessionStorage.setItem(REFRESH_STORAGE_KEY, session.refresh); } catch (_) { /* storage off */ }
    clearTimeout(session.timer);
    session.timer = setTimeout(() => refreshTokens().catch(() => {}), renewIn);
  }

  function clearTokens() {
    clearTimeout(session.timer);
    Object.assign(session, { access: null, refresh: null, renewAt: 0, timer: null, refreshing: null });
    try { sessionStorage.removeItem(REFRESH_STORAGE_KEY); } catch (_) { /* storage off */ }
  }

  /** Rotate the refresh token for a new pair; one request at a time however many callers ask. */
  function refreshTokens() {
    if (!session.refreshing) {
      const token = session.refresh;
      session.refreshing = (async () => {
        if (!token) throw new ApiError(401, "unauthenticated", "Please sign in.");
        const response = await send("v1/auth/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: token }),
        });
        if (!response.ok) {
          const err = await errorFrom(response);
          if (response.status === 401 || response.status === 403) {
            signOut("Your session has expired. Please sign in again.");
          }
          throw err;
        }
        setTokens(await response.json());
      })().finally(() => { session.refreshing = null; });
    }
    return session.refreshing;
  }

  async function exchangeKey(apiKey) {
    const response = await send("v1/auth/token", {
      method: "POST", headers: { Authorization: `Bearer ${apiKey}` },
    });
    if (!response.ok) throw await errorFrom(response);
    setTokens(await response.json());
  }

  // ---------------------------------------------------------------- views

  function showError(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  function setBusy(button, busy, label) {
    button.disabled = busy;
    button.classList.toggle("busy", busy);
    button.setAttribute("aria-busy", String(busy));
    if (label) button.textContent = label;
  }

  function showSignIn(message) {
    el.appView.hidden = true;
    el.account.hidden = true;
    el.signinView.hidden = false;
    showError(el.signinError, message);
    el.apiKey.value = "";
    el.apiKey.focus();
  }

  async function showApp() {
    el.signinView.hidden = true;
    el.appView.hidden = false;
    el.account.hidden = false;
    el.main.focus({ preventScroll: true });
    const [, history] = await Promise.allSettled([loadMe(), loadHistory()]);
    // Pick up a job still in progress from an earlier visit.
    const active = (history.value || []).find((job) => !TERMINAL.has(job.status));
    if (active && !state.job) startJob(active);
  }

  function signOut(message) {
    stopWatching();
    clearTokens();
    state.me = null;
    state.job = null;
    resetJobView();
    el.historyBody.replaceChildren();
    showSignIn(message);
  }

  // ---------------------------------------------------------------- account, plan and quota

  async function loadMe() {
    try {
      state.me = await apiJson("v1/me");
    } catch (err) {
      if (err.status === 401) return;
      state.me = null;
      showError(el.historyError, `Could not load your account: ${err.message}`);
      return;
    }
    renderMe(state.me);
  }

  /** The figures the page shows from GET v1/me: plan limits and today's quota. */
  function accountFigures(me) {
    const { plan, quota } = me;
    return {
      name: me.name,
      plan: plan.name,
      maxDuration: num(plan.max_duration_s),
      maxResolution: num(plan.max_resolution),
      concurrent: num(plan.concurrent_jobs),
      daily: num(quota.limit_s),
      used: num(quota.used_s),
      left: num(quota.remaining_s),
      active: num(me.active_jobs),
    };
  }

  function renderMe(me) {
    const f = accountFigures(me);
    el.userName.textContent = f.name || "Signed in";
    el.planBadge.textContent = f.plan || "plan";
    el.planBadge.title = f.plan ? `${f.plan} plan` : "";

    if (f.daily != null && f.used != null) {
      const share = f.daily > 0 ? Math.min(1, f.used / f.daily) : 1;
      el.quotaLeft.textContent = seconds(Math.max(0, f.left));
      el.quotaLimit.textContent = `${seconds(f.daily)} of video today`;
      el.quotaBar.style.width = `${(share * 100).toFixed(1)}%`;
      el.quotaMeter.setAttribute("aria-valuenow", (share * 100).toFixed(0));
      el.quotaMeter.setAttribute("aria-valuetext", `${seconds(f.used)} of ${seconds(f.daily)} used`);
      el.quotaMeter.classList.toggle("high", share >= 0.8 && share < 1);
      el.quotaMeter.classList.toggle("full", share >= 1);
      el.topQuotaText.textContent = `${seconds(Math.max(0, f.left))} left today`;
      el.topQuotaBar.style.width = `${(share * 100).toFixed(1)}%`;
    }
    el.quotaReset.textContent = "resets at 00:00 UTC";

    const rows = [
      ["Plan", f.plan ? capitalise(f.plan) : "–"],
      ["Used today", f.used != null ? seconds(f.used) : "–"],
      ["Longest video", f.maxDuration != null ? seconds(f.maxDuration) : "–"],
      ["Highest resolution", f.maxResolution != null ? `${f.maxResolution} px` : "–"],
      ["Jobs at once", f.concurrent != null ? String(f.concurrent) : "–"],
    ];
    if (f.active != null) rows.push(["Running now", String(f.active)]);
    el.limits.replaceChildren(...rows.map(([term, value]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      div.append(dt, dd);
      return div;
    }));
    el.planLimits.textContent = f.maxDuration != null
      ? `up to ${seconds(f.maxDuration)} · ${f.maxResolution ?? "–"} px` : "";
    applyPlanToForm(f);
    updateCostHint();
  }

  /** Offer only the resolutions the plan allows (the others are listed, disabled). */
  function applyPlanToForm(f) {
    const select = el.minResolution;
    const chosen = Number(select.value || select.dataset.default);
    const bounds = state.fields.min_resolution || {};
    const lo = num(bounds.minimum) ?? RESOLUTIONS[0];
    const hi = num(bounds.maximum) ?? RESOLUTIONS[RESOLUTIONS.length - 1];
    const step = num(bounds.multipleOf) ?? 64;
    const planMax = Math.min(f.maxResolution ?? hi, hi);
    select.replaceChildren(...RESOLUTIONS.filter((r) => r >= lo && r <= hi && r % step === 0).map((r) => {
      const option = document.createElement("option");
      option.value = String(r);
      option.disabled = r > planMax;
      option.textContent = r > planMax ? `${r} px — not in your plan` : `${r} px${r === 512 ? " (default)" : ""}`;
      return option;
    }));
    const fallback = Math.min(Number(select.dataset.default), planMax);
    select.value = String(chosen <= planMax ? chosen : fallback);
  }

  /**
   * Read the job form's fields from the API's own OpenAPI description, so the page offers exactly
   * what the server accepts: each setting gets the server's bounds, and a setting the server does
   * not list is hidden. Without the description the page keeps its built-in bounds.
   */
  async function loadFieldSchema() {
    try {
      const response = await send("openapi.json", { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const doc = await response.json();
      const body = doc.paths?.["/v1/jobs"]?.post?.requestBody?.content?.["multipart/form-data"]?.schema;
      if (!body || !body.properties) return;
      state.fields = body.properties;
    } catch (_) {
      return;
    }
    for (const input of el.jobForm.querySelectorAll("[name]")) {
      if (input.name === "mode") continue;
      const spec = state.fields[input.name];
      const field = input.closest(".field, .switch, .inline-select");
      if (!spec) {
        if (field && el.settings.contains(field)) field.hidden = true;
        continue;
      }
      if (input.type === "number" || input.type === "range") {
        const lo = num(spec.minimum) ?? num(spec.exclusiveMinimum);
        if (lo != null) input.min = String(lo);
        if (num(spec.maximum) != null) input.max = String(spec.maximum);
      }
      if (input.tagName === "TEXTAREA" && num(spec.maxLength) != null) input.maxLength = spec.maxLength;
    }
    if (num(state.fields.text?.maxLength) != null) $("text-max").textContent = String(state.fields.text.maxLength);
    applyPlanToForm(state.me ? accountFigures(state.me) : {});
  }

  // ---------------------------------------------------------------- the form

  function mode() {
    return el.jobForm.elements.mode.value;
  }

  function onModeChange() {
    const text = mode() === "text";
    el.audioGroup.hidden = text;
    el.textGroup.hidden = !text;
    showError(el.formError, "");
    updateCostHint();
  }

  function releasePreviews() {
    state.previewUrls.forEach((url) => URL.revokeObjectURL(url));
    state.previewUrls = [];
  }

  function preview(file) {
    const url = URL.createObjectURL(file);
    state.previewUrls.push(url);
    return url;
  }

  function onImageChange() {
    const file = el.image.files[0];
    el.image.removeAttribute("aria-invalid");
    el.imageDrop.classList.toggle("has-image", Boolean(file));
    el.imagePreview.hidden = !file;
    $("image-drop-text").hidden = Boolean(file);
    if (file) {
      el.imagePreview.src = preview(file);
      el.imagePreview.alt = `Selected portrait: ${file.name}`;
    }
    state.idempotency = null;
  }

  /** Show the chosen file's name and size in its drop zone (or the zone's own prompt again). */
  function showChosenFile(zone, file) {
    const strong = zone.querySelector(".drop-text strong");
    const detail = zone.querySelector(".drop-text span");
    zone.dataset.prompt = zone.dataset.prompt || strong.textContent;
    zone.dataset.detail = zone.dataset.detail || detail.textContent;
    zone.classList.toggle("has-file", Boolean(file));
    strong.textContent = file ? file.name : zone.dataset.prompt;
    detail.textContent = file ? bytes(file.size) : zone.dataset.detail;
  }

  function onVoiceChange() {
    showChosenFile(el.voiceDrop, el.voice.files[0]);
    state.idempotency = null;
  }

  function onAudioChange() {
    const file = el.audio.files[0];
    el.audio.removeAttribute("aria-invalid");
    state.audioSeconds = null;
    state.idempotency = null;
    showChosenFile(el.audioDrop, file);
    if (!file) {
      el.audioPreview.hidden = true;
      el.audioHint.textContent = "The video is as long as the recording.";
      updateCostHint();
      return;
    }
    el.audioPreview.src = preview(file);
    el.audioPreview.hidden = false;
    el.audioHint.textContent = "Reading the length…";
    el.audioPreview.onloadedmetadata = () => {
      const d = el.audioPreview.duration;
      state.audioSeconds = Number.isFinite(d) ? d : null;
      el.audioHint.textContent = state.audioSeconds != null
        ? `${seconds(state.audioSeconds)} of speech — the video will be as long.`
        : "The video is as long as the recording.";
      updateCostHint();
    };
    el.audioPreview.onerror = () => {
      el.audioHint.textContent = "This browser cannot preview the file; the server will still read it.";
    };
  }

  function updateCostHint() {
    const f = state.me ? accountFigures(state.me) : null;
    let hint = "";
    if (mode() === "audio" && state.audioSeconds != null) {
      hint = `Uses about ${seconds(state.audioSeconds)} of your quota`;
      if (f && f.maxDuration != null && state.audioSeconds > f.maxDuration) {
        hint = `Too long for your plan: ${seconds(state.audioSeconds)} (longest ${seconds(f.maxDuration)})`;
      } else if (f && f.left != null && state.audioSeconds > f.left) {
        hint = `Needs ${seconds(state.audioSeconds)}, but only ${seconds(Math.max(0, f.left))} are left today`;
      }
    } else if (mode() === "text") {
      hint = "Uses the length of the spoken text from your quota";
    }
    el.costHint.textContent = hint;
  }

  /** The changed settings only: defaults are the server's, and unchanged values are not sent. */
  function changedSettings() {
    const out = {};
    for (const input of el.settings.querySelectorAll("[data-default]")) {
      const value = input.type === "checkbox" ? String(input.checked) : input.value.trim();
      if (value !== input.dataset.default && value !== "") out[input.name] = value;
    }
    return out;
  }

  function updateSettingsSummary() {
    for (const input of el.settings.querySelectorAll("input[type=range]")) {
      $(`${input.id}-out`).textContent = Number(input.value).toFixed(2);
    }
    const n = Object.keys(changedSettings()).length;
    el.settingsSummary.textContent = n ? `${n} changed` : "defaults";
  }

  function validateForm() {
    const problems = [];
    const mark = (input, bad) => (bad ? input.setAttribute("aria-invalid", "true") : input.removeAttribute("aria-invalid"));
    mark(el.image, !el.image.files.length);
    if (!el.image.files.length) problems.push([el.image, "Choose a portrait photo."]);
    if (mode() === "audio") {
      mark(el.audio, !el.audio.files.length);
      if (!el.audio.files.length) problems.push([el.audio, "Choose a recording, or switch to Text."]);
    } else {
      mark(el.text, !el.text.value.trim());
      if (!el.text.value.trim()) problems.push([el.text, "Type the text to speak."]);
    }
    for (const input of el.settings.querySelectorAll("input[type=number]")) {
      const bad = input.value !== "" && !input.checkValidity();
      mark(input, bad);
      if (bad) {
        const name = input.labels[0].textContent.replace(/optional/i, "").trim();
        const range = input.max ? `${input.min}–${input.max}` : `≥ ${input.min}`;
        problems.push([input, `${name} must be a whole number, ${range}.`]);
        el.settings.open = true;
      }
    }
    return problems;
  }

  function buildFormData() {
    const data = new FormData();
    data.append("image", el.image.files[0]);
    if (mode() === "audio") {
      data.append("audio", el.audio.files[0]);
      if (el.transcript.value.trim()) data.append("transcript", el.transcript.value.trim());
    } else {
      data.append("text", el.text.value.trim());
      if (el.lang.value !== "en") data.append("lang", el.lang.value);
      if (el.voice.files.length) data.append("voice", el.voice.files[0]);
    }
    for (const [name, value] of Object.entries(changedSettings())) data.append(name, value);
    return data;
  }

  function randomKey() {
    const raw = new Uint8Array(16);
    crypto.getRandomValues(raw);
    return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function onSubmit(event) {
    event.preventDefault();
    showError(el.formError, "");
    const problems = validateForm();
    if (problems.length) {
      showError(el.formError, problems.map(([, message]) => message).join(" "));
      problems[0][0].focus();
      return;
    }
    // The same key for a retried identical request, so a double click or a lost reply never makes two jobs.
    state.idempotency = state.idempotency || randomKey();
    setBusy(el.submit, true, "Uploading…");
    try {
      const response = await api("v1/jobs", {
        method: "POST", body: buildFormData(), headers: { "Idempotency-Key": state.idempotency },
      });
      const job = await response.json();
      state.idempotency = null;
      startJob(job);
      loadMe();
      loadHistory();
    } catch (err) {
      if (err.status !== 0) state.idempotency = null; // refused: a corrected request is a new one
      showError(el.formError, err.message);
    } finally {
      setBusy(el.submit, false, "Generate video");
    }
  }

  // ---------------------------------------------------------------- watching a job

  function resetJobView() {
    el.jobEmpty.hidden = false;
    el.jobView.hidden = true;
    el.jobStatus.hidden = true;
    el.video.removeAttribute("src");
    el.video.load();
  }

  function startJob(job) {
    state.job = { ...job };
    el.jobEmpty.hidden = true;
    el.jobView.hidden = false;
    el.jobResult.hidden = true;
    el.video.removeAttribute("src");
    renderJob();
    highlightHistoryRow();
    if (!TERMINAL.has(job.status)) watch(job.id);
    else loadJob(job.id);
  }

  function renderJob() {
    const job = state.job;
    if (!job) return;
    const status = job.status || "queued";
    el.jobStatus.hidden = false;
    el.jobStatus.className = `status-badge status-${status}`;
    el.jobStatus.textContent = STATUS_WORDS[status] || status;
    el.jobId.textContent = `Job ${job.id}`;

    const pct = progressPercent(job);
    el.jobProgress.classList.toggle("indeterminate", status === "queued" || (status === "running" && pct === 0));
    el.jobProgress.classList.toggle("done", status === "succeeded");
    el.jobProgress.classList.toggle("failed", status === "failed" || status === "canceled");
    el.jobBar.style.width = `${status === "succeeded" ? 100 : pct}%`;
    el.jobProgress.setAttribute("aria-valuenow", String(status === "succeeded" ? 100 : Math.round(pct)));

    let message = "";
    if (status === "queued") {
      const pos = job.queue_position;
      message = pos != null && pos > 0 ? `Waiting in the queue — ${ordinal(pos)} in line.` : "Waiting for a worker…";
    } else if (status === "running" && job.cancel_requested) {
      message = "Stopping the job…";
    } else if (status === "running") {
      message = pct > 0 ? `Generating… ${Math.round(pct)} %` : "Starting…";
    } else if (status === "succeeded") {
      message = "Your video is ready.";
    } else if (status === "failed") {
      message = "The job failed. Your quota was refunded.";
    } else if (status === "canceled") {
      message = "The job was canceled. Your quota was refunded.";
    }
    el.jobMessage.textContent = message;
    const error = job.error;
    showError(el.jobError, error ? (typeof error === "string" ? error : error.message || error.code) : "");
    el.cancel.hidden = TERMINAL.has(status) || Boolean(job.cancel_requested);
    if (status === "succeeded" && job.result) renderResult(job);
  }

  function renderResult(job) {
    const result = job.result;
    const url = result.video_url || result.url;
    if (!url) return;
    const absolute = new URL(url, document.baseURI).toString();
    if (el.video.getAttribute("src") !== absolute) {
      el.video.src = absolute;
      el.download.href = absolute;
    }
    el.download.setAttribute("download", `mouthpiece-${job.id.slice(0, 8)}.mp4`);
    const bits = [];
    if (result.duration_s != null) bits.push(seconds(result.duration_s));
    if (Array.isArray(result.resolution)) bits.push(`${result.resolution[0]}×${result.resolution[1]}`);
    if (result.fps) bits.push(`${result.fps} fps`);
    if (result.compute_s != null) bits.push(`made in ${seconds(result.compute_s)}`);
    if (result.expires_at) bits.push(`link valid until ${clock(result.expires_at)}`);
    el.resultMeta.textContent = bits.join(" · ");
    const warnings = Array.isArray(result.warnings) ? result.warnings : [];
    el.warnings.replaceChildren(...warnings.map((w) => {
      const li = document.createElement("li");
      li.textContent = w;
      return li;
    }));
    el.warnings.hidden = warnings.length === 0;
    el.jobResult.hidden = false;
  }

  function progressPercent(job) {
    const p = Number(job.progress) || 0;
    return Math.max(0, Math.min(100, p <= 1 ? p * 100 : p));
  }

  function stopWatching() {
    if (state.watch) state.watch.abort();
    state.watch = null;
  }

  async function watch(jobId) {
    stopWatching();
    const controller = new AbortController();
    state.watch = controller;
    try {
      const finished = await streamEvents(jobId, controller.signal).catch((err) => {
        if (controller.signal.aborted) throw err;
        return false; // no stream (proxy, old server): poll instead
      });
      if (!finished) await poll(jobId, controller.signal);
      await loadJob(jobId, controller.signal); // the final document carries a fresh signed URL
      if (!controller.signal.aborted) {
        loadMe();
        loadHistory();
      }
    } catch (err) {
      if (!controller.signal.aborted) showError(el.jobError, err.message);
    } finally {
      if (state.watch === controller) state.watch = null;
    }
  }

  /** Read the job's server-sent events; true once a terminal status was seen. */
  async function streamEvents(jobId, signal) {
    const response = await api(`v1/jobs/${encodeURIComponent(jobId)}/events`, {
      signal, headers: { Accept: "text/event-stream" },
    });
    if (!response.body || !(response.headers.get("Content-Type") || "").includes("text/event-stream")) {
      return false;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        buffer += value;
        let cut;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
          if (applyEvent(jobId, parseEvent(block))) return true;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function parseEvent(block) {
    const event = { type: "message", data: "" };
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event.type = value;
      else if (field === "data") data.push(value);
    }
    event.data = data.join("\n");
    return event;
  }

  /** Merge one event into the shown job; true when the job has reached a final state. */
  function applyEvent(jobId, event) {
    if (!event.data || !state.job || state.job.id !== jobId) return false;
    let payload;
    try {
      payload = JSON.parse(event.data);
    } catch (_) {
      return false;
    }
    if (payload && typeof payload === "object") {
      if (!payload.status && STATUS_WORDS[event.type]) payload.status = event.type;
      Object.assign(state.job, payload);
      renderJob();
    }
    return TERMINAL.has(state.job.status);
  }

  async function poll(jobId, signal) {
    for (let i = 0; !signal.aborted; i += 1) {
      await loadJob(jobId, signal);
      if (state.job && TERMINAL.has(state.job.status)) return;
      await sleep(POLL_MS[Math.min(i, POLL_MS.length - 1)], signal);
    }
  }

  async function loadJob(jobId, signal) {
    const job = await apiJson(`v1/jobs/${encodeURIComponent(jobId)}`, { signal });
    if (state.job && state.job.id === jobId) {
      state.job = job;
      renderJob();
    }
    return job;
  }

  /** A result that will not load has most likely outlived its signed link: fetch a fresh one, once. */
  async function onVideoError() {
    const job = state.job;
    if (!job || job.status !== "succeeded" || !el.video.getAttribute("src")) return;
    if (job.linkRenewed) {
      showError(el.jobError, "The video could not be loaded. Try Refresh, or download it instead.");
      return;
    }
    try {
      await loadJob(job.id);
      if (state.job) state.job.linkRenewed = true;
    } catch (err) {
      showError(el.jobError, err.message);
    }
  }

  async function onCancel() {
    if (!state.job) return;
    setBusy(el.cancel, true, "Canceling…");
    try {
      await api(`v1/jobs/${encodeURIComponent(state.job.id)}/cancel`, { method: "POST" });
      await loadJob(state.job.id);
      loadMe();
      loadHistory();
    } catch (err) {
      showError(el.jobError, err.message);
    } finally {
      setBusy(el.cancel, false, "Cancel job");
    }
  }

  // ---------------------------------------------------------------- history

  async function loadHistory() {
    showError(el.historyError, "");
    setBusy(el.historyRefresh, true);
    try {
      const body = await apiJson(`v1/jobs?limit=${HISTORY_LIMIT}`);
      const jobs = Array.isArray(body) ? body : body.jobs || body.items || [];
      renderHistory(jobs.slice(0, HISTORY_LIMIT));
      return jobs;
    } catch (err) {
      if (err.status !== 401) showError(el.historyError, `Could not load your jobs: ${err.message}`);
      return [];
    } finally {
      setBusy(el.historyRefresh, false);
    }
  }

  function renderHistory(jobs) {
    el.historyEmpty.hidden = jobs.length > 0;
    el.historyTable.hidden = jobs.length === 0;
    el.historyBody.replaceChildren(...jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.jobId = job.id;

      const when = document.createElement("td");
      when.textContent = job.created_at ? clock(job.created_at, true) : "–";
      const id = document.createElement("span");
      id.className = "sub-id";
      id.textContent = job.id.slice(0, 12);
      when.append(id);

      const kind = document.createElement("td");
      kind.className = "col-input";
      kind.textContent = job.kind === "text" ? "Text" : "Recording";

      const length = document.createElement("td");
      const secs = job.result?.duration_s ?? job.charged_s;
      length.textContent = secs != null ? seconds(secs) : "–";

      const status = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = `status-badge status-${job.status}`;
      badge.textContent = STATUS_WORDS[job.status] || job.status;
      status.append(badge);

      const actions = document.createElement("td");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "btn btn-ghost btn-small";
      open.textContent = job.status === "succeeded" ? "Watch" : "Open";
      open.setAttribute("aria-label", `${open.textContent} job ${job.id.slice(0, 12)}`);
      open.addEventListener("click", () => {
        startJob(job);
        document.querySelector(".job").scrollIntoView({ behavior: "smooth", block: "nearest" });
      });
      actions.append(open);

      row.append(when, kind, length, status, actions);
      return row;
    }));
    highlightHistoryRow();
  }

  function highlightHistoryRow() {
    for (const row of el.historyBody.rows) {
      row.classList.toggle("current", Boolean(state.job) && row.dataset.jobId === state.job.id);
    }
  }

  // ---------------------------------------------------------------- formatting

  function num(value) {
    const n = Number(value);
    return value == null || value === "" || !Number.isFinite(n) ? null : n;
  }

  function seconds(s) {
    if (s < 60) return `${Number(s.toFixed(s < 10 && s % 1 ? 1 : 0))} s`;
    const m = Math.floor(s / 60);
    const rest = Math.round(s % 60);
    if (m < 60) return rest ? `${m} min ${rest} s` : `${m} min`;
    const h = Math.floor(m / 60);
    return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  }

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 ** 2).toFixed(1)} MB`;
  }

  function clock(epochSeconds, withDate = false) {
    const d = new Date(epochSeconds * 1000);
    const sameDay = d.toDateString() === new Date().toDateString();
    const opts = withDate && !sameDay
      ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
      : { hour: "2-digit", minute: "2-digit" };
    return d.toLocaleString(undefined, opts);
  }

  function ordinal(n) {
    const rule = new Intl.PluralRules("en", { type: "ordinal" }).select(n);
    return `${n}${{ one: "st", two: "nd", few: "rd", other: "th" }[rule]}`;
  }

  const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  // ---------------------------------------------------------------- wiring

  function enableDrop(zone, input, onChange) {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("dragging");
      if (e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        onChange();
      }
    });
  }

  async function onSignIn(event) {
    event.preventDefault();
    const key = el.apiKey.value.trim();
    if (!key) {
      el.apiKey.setAttribute("aria-invalid", "true");
      showError(el.signinError, "Enter your API key.");
      el.apiKey.focus();
      return;
    }
    setBusy(el.signinButton, true, "Signing in…");
    showError(el.signinError, "");
    try {
      await exchangeKey(key);
      el.apiKey.value = "";
      el.apiKey.removeAttribute("aria-invalid");
      await showApp();
    } catch (err) {
      el.apiKey.setAttribute("aria-invalid", "true");
      showError(el.signinError, err.status === 401 || err.status === 403
        ? `That API key was not accepted: ${err.message}` : err.message);
      el.apiKey.select();
    } finally {
      setBusy(el.signinButton, false, "Sign in");
    }
  }

  async function start() {
    el.signinForm.addEventListener("submit", onSignIn);
    el.signOut.addEventListener("click", () => signOut(""));
    el.jobForm.addEventListener("submit", onSubmit);
    el.jobForm.addEventListener("input", () => { state.idempotency = null; });
    for (const radio of el.jobForm.elements.mode) radio.addEventListener("change", onModeChange);
    el.image.addEventListener("change", onImageChange);
    el.audio.addEventListener("change", onAudioChange);
    enableDrop(el.imageDrop, el.image, onImageChange);
    enableDrop(el.audioDrop, el.audio, onAudioChange);
    el.voice.addEventListener("change", onVoiceChange);
    enableDrop(el.voiceDrop, el.voice, onVoiceChange);
    el.text.addEventListener("input", () => { el.textCount.textContent = String(el.text.value.length); });
    el.settings.addEventListener("input", updateSettingsSummary);
    el.settings.addEventListener("change", updateSettingsSummary);
    el.cancel.addEventListener("click", onCancel);
    el.video.addEventListener("error", onVideoError);
    el.historyRefresh.addEventListener("click", () => { loadHistory(); loadMe(); });
    window.addEventListener("pagehide", releasePreviews);
    applyPlanToForm({});
    updateSettingsSummary();
    loadFieldSchema();

    let stored = null;
    try { stored = sessionStorage.getItem(REFRESH_STORAGE_KEY); } catch (_) { /* storage off */ }
    if (stored) {
      session.refresh = stored;
      try {
        await refreshTokens();
        await showApp();
        return;
      } catch (_) {
        clearTokens();
      }
    }
    showSignIn("");
  }

  start();
})();
