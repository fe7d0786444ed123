// The page's little bit of behaviour: upload, search, retry, and a live lag figure.
// Writes send the bearer token typed into the header field (kept in this browser's localStorage).
(function () {
  const $ = (sel) => document.querySelector(sel);
  const tokenInput = $("#token");
  // The key also goes into a SameSite=Strict cookie: the server-rendered page and the images under
  // /media/ (an <img> sends no Authorization header) show what it allows. The API ignores the cookie.
  function setKeyCookie(key) {
    document.cookie = "chronicle_key=" + encodeURIComponent(key) + "; path=/; SameSite=Strict" +
      (key ? "" : "; max-age=0");
  }
  if (tokenInput) {
    tokenInput.value = localStorage.getItem("chronicle.token") || "";
    tokenInput.addEventListener("change", () => {
      const key = tokenInput.value.trim();
      localStorage.setItem("chronicle.token", key);
      setKeyCookie(key);
      window.location.reload();
    });
  }
  if (!$("#upload-form")) return; // no key yet: the page shows only the key field

  function authHeaders() {
    const token = tokenInput ? tokenInput.value.trim() : "";
    return token ? { Authorization: "Bearer " + token } : {};
  }

  async function api(method, url, body) {
    const response = await fetch(url, { method, body, headers: authHeaders() });
    let payload = null;
    try { payload = await response.json(); } catch (err) { payload = null; }
    if (!response.ok) {
      const detail = payload && payload.detail ? payload.detail : response.statusText;
      throw new Error(`${response.status}: ${detail}`);
    }
    return payload;
  }

  function say(el, text, kind) {
    el.textContent = text;
    el.dataset.kind = kind || "info";
  }

  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // -- upload: store, then follow the image until the workers are done with it ----------------------
  $("#upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("#upload-message");
    const file = $("#upload-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    say(message, `uploading ${file.name}…`);
    try {
      const stored = await api("POST", "/images", form);
      say(message, `${stored.duplicate ? "already uploaded" : "uploaded"}; waiting for processing…`);
      for (let i = 0; i < 120; i++) {
        const response = await fetch(stored.url);
        if (response.ok) {
          const image = await response.json();
          if (image.status === "completed" || image.status === "failed") {
            say(message, `${image.status}: ${image.variants.length} variants`, image.status === "failed" ? "error" : "ok");
            location.reload();
            return;
          }
        }
        await wait(1000);
      }
      say(message, "still processing: is a worker running? (`chronicle worker`)", "error");
    } catch (err) {
      say(message, err.message, "error");
    }
  });

  // -- search ----------------------------------------------------------------------------------------
  $("#search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const list = $("#search-results");
    const message = $("#search-message");
    list.replaceChildren();
    say(message, "searching…");
    try {
      const q = $("#search-q").value.trim();
      const payload = await api("GET", "/search?q=" + encodeURIComponent(q));
      for (const hit of payload.results || []) {
        const li = document.createElement("li");
        const title = hit.title || hit.id || JSON.stringify(hit).slice(0, 80);
        li.textContent = title;
        if (hit.score !== undefined) {
          const score = document.createElement("span");
          score.className = "muted";
          score.textContent = ` ${Number(hit.score).toFixed(3)}`;
          li.append(score);
        }
        list.append(li);
      }
      say(message, (payload.results || []).length ? "" : "no matches");
    } catch (err) {
      say(message, err.message, "error");
    }
  });

  // -- retry a failure -------------------------------------------------------------------------------
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-retry]");
    if (!button) return;
    const message = $("#failure-message");
    button.disabled = true;
    try {
      const result = await api("POST", `/failures/${encodeURIComponent(button.dataset.retry)}/retry`);
      say(message, `retry requested for ${result.id}: the workers will run it again`, "ok");
      button.textContent = "Requested";
    } catch (err) {
      say(message, err.message, "error");
      button.disabled = false;
    }
  });

  // -- keep the lag figures fresh --------------------------------------------------------------------
  async function refreshStatus() {
    try {
      const status = await api("GET", "/status");
      $("#head").textContent = status.head;
      let lag = 0;
      for (const group of ["projections", "subscribers"]) {
        for (const [name, entry] of Object.entries(status[group])) {
          lag = Math.max(lag, entry.lag);
          for (const key of ["checkpoint", "lag"]) {
            const el = document.querySelector(`[data-consumer="${group}.${name}.${key}"]`);
            if (el) el.textContent = entry[key];
          }
        }
      }
      $("#lag").textContent = lag;
      $("#lag-pill").className = "pill " + (lag ? "warn" : "ok");
    } catch (err) { /* the next tick will try again */ }
  }
  setInterval(refreshStatus, 5000);
  if (window.paintBlurhashes) window.paintBlurhashes();
})();
