// Facet's page: the public REST API only (same origin), no framework, no build step.
const POLL_MS = 500;
const $ = (id) => document.getElementById(id);

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const other of tabs) {
      const chosen = other === tab;
      other.setAttribute("aria-selected", String(chosen));
      other.tabIndex = chosen ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !chosen;
    }
    tab.focus();
  };
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) select(tabs[(index + step + tabs.length) % tabs.length]);
    });
  });
}

function setupDrops() {
  for (const zone of document.querySelectorAll("[data-drop]")) {
    const input = zone.querySelector('input[type="file"]');
    zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    });
  }
  const weight = $("restore-weight");
  weight.addEventListener("input", () => { $("restore-weight-value").value = weight.value; });
}

function say(text, { error = false } = {}) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

function showProgress(percent) {
  const bar = $("progress");
  bar.hidden = percent === null;
  if (percent !== null) bar.value = percent;
}

function showWarning(text) {
  $("warning").hidden = !text;
  $("warning").textContent = text ? `Warning: ${text}` : "";
}

// The API's errors are {"detail": …}; FastAPI's own validation errors carry a list.
async function reasonOf(response) {
  try {
    const body = await response.json();
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    return `${response.status}: ${detail || response.statusText}`;
  } catch {
    return `${response.status}: ${response.statusText}`;
  }
}

async function postForm(path, form) {
  const response = await fetch(path, { method: "POST", body: form });
  if (!response.ok) throw new Error(await reasonOf(response));
  return response.json();
}

async function waitForJob(jobId) {
  for (;;) {
    const response = await fetch(`/status/${encodeURIComponent(jobId)}`);
    if (!response.ok) throw new Error(await reasonOf(response));
    const job = await response.json();
    showProgress(job.progress ?? 0);
    if (job.warning) showWarning(job.warning);
    if (job.status === "completed") return job;
    if (job.status === "failed" || job.status === "cancelled") {
      throw new Error(`the job ${job.status}: ${job.error || "no reason given"}`);
    }
    say(`Job ${job.status}… ${job.progress ?? 0} %`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function loaded(img, src) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the result could not be shown"));
    img.src = src;
  });
}

async function showResult(file, resultUrl) {
  const response = await fetch(resultUrl);
  if (!response.ok) throw new Error(await reasonOf(response));
  const blob = await response.blob();
  const after = await loaded($("after"), URL.createObjectURL(blob));
  const before = await loaded($("before"), URL.createObjectURL(file));
  $("result").hidden = false;
  fitBefore();
  $("sizes").textContent =
    `${before.naturalWidth} × ${before.naturalHeight} → ${after.naturalWidth} × ${after.naturalHeight}`;
  const link = $("download");
  link.href = after.src;
  link.download = resultUrl.split("/").pop() || "result";
}

// The original is drawn at the result's displayed size, so the slider compares like for like.
function fitBefore() {
  const after = $("after");
  $("before").style.width = `${after.clientWidth}px`;
  $("before-clip").style.width = `${$("slider").value}%`;
}

const operations = {
  async upscale(form, file) {
    const body = new FormData();
    body.append("file", file);
    body.append("scale", form.elements.scale.value);
    body.append("face_enhance", String(form.elements.face_enhance.checked));
    const queued = await postForm("/upscale", body);
    say("Queued…");
    showProgress(0);
    const job = await waitForJob(queued.job_id);
    return job.result_url;
  },
  async restore(form, file) {
    const body = new FormData();
    body.append("file", file);
    body.append("upscale", form.elements.upscale.value);
    body.append("weight", form.elements.weight.value);
    body.append("only_center_face", String(form.elements.only_center_face.checked));
    body.append("background_enhance", String(form.elements.background_enhance.checked));
    say("Restoring…");
    showProgress(null);
    const restored = await postForm("/restore", body);
    if (restored.warning) showWarning(restored.warning);
    return restored.download_url;
  },
};

function setupForms() {
  for (const form of document.querySelectorAll("form.operation")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = form.elements.file.files[0];
      if (!file) { say("Choose an image first.", { error: true }); return; }
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      $("result").hidden = true;
      showWarning("");
      try {
        const resultUrl = await operations[form.dataset.operation](form, file);
        await showResult(file, resultUrl);
        showProgress(null);
        say("Done.");
      } catch (error) {
        showProgress(null);
        say(error.message, { error: true });
      } finally {
        button.disabled = false;
      }
    });
  }
  $("slider").addEventListener("input", fitBefore);
  window.addEventListener("resize", fitBefore);
}

setupTabs();
setupDrops();
setupForms();
