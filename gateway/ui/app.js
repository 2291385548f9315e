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

async function fetchBlob(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(await reasonOf(response));
  return response.blob();
}

async function showResult(file, result) {
  const blob = await fetchBlob(result.url);
  const isVideo = result.kind === "video";
  for (const id of ["compare", "slider", "sizes"]) $(id).hidden = isVideo;
  document.querySelector('label[for="slider"]').hidden = isVideo;
  $("video-result").hidden = !isVideo;
  const shown = URL.createObjectURL(blob);
  $("result").hidden = false;
  if (isVideo) {
    $("video-result").src = shown;
  } else {
    const after = await loaded($("after"), shown);
    const before = await loaded($("before"), URL.createObjectURL(file));
    fitBefore();
    $("sizes").textContent =
      `${before.naturalWidth} × ${before.naturalHeight} → ${after.naturalWidth} × ${after.naturalHeight}`;
  }
  const link = $("download");
  link.href = shown;
  link.download = result.url.split("/").pop().split("?")[0] || "result";
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
    return { kind: "image", url: job.result_url };
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
    return { kind: "image", url: restored.download_url };
  },
  // The FaceFusion API: a photo is answered at once, a video runs as a job (`async`).
  async swap(form, file) {
    const isVideo = file.type.startsWith("video/");
    const processors = ["face_swapper"];
    if (form.elements.face_enhancer.checked) processors.push("face_enhancer");
    const request = { processors, face_selector_mode: form.elements.face_selector_mode.value };
    if (isVideo) request.async = true;
    const body = new FormData();
    body.append("target", file);
    body.append("source", form.elements.source.files[0]);
    body.append("request", JSON.stringify(request));
    say(isVideo ? "Uploading the video…" : "Swapping…");
    showProgress(isVideo ? 0 : null);
    let answer = await postForm(isVideo ? "/process/video" : "/process/image", body);
    if (answer.warning) showWarning(answer.warning);
    if (answer.status !== "completed") answer = await waitForJob(answer.job_id);
    const name = (answer.output_path || "").split("/").pop();
    return { kind: isVideo ? "video" : "image", url: `/download/${encodeURIComponent(name)}` };
  },
};

function setupForms() {
  for (const form of document.querySelectorAll("form[data-operation]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = form.elements.file.files[0];
      if (!file) { say("Choose a file first.", { error: true }); return; }
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      $("result").hidden = true;
      showWarning("");
      try {
        const result = await operations[form.dataset.operation](form, file);
        await showResult(file, result);
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

// The Image Context Extractor API: one upload is captioned, tagged and stored; text searches it.
function describe(item) {
  const entry = document.createElement("li");
  const img = document.createElement("img");
  img.src = `/api/v1/images/download/${encodeURIComponent(item.id)}`;
  img.alt = item.caption || item.filename;
  const caption = document.createElement("p");
  caption.textContent = item.caption || "(no caption)";
  const tags = document.createElement("p");
  tags.textContent = item.objects.length ? `objects: ${item.objects.join(", ")}` : "no objects found";
  entry.append(img, caption, tags);
  if (item.score !== undefined) {
    const score = document.createElement("p");
    score.className = "score";
    score.textContent = `score ${item.score.toFixed(3)}`;
    entry.append(score);
  }
  return entry;
}

function setupSearch() {
  const results = $("search-results");
  $("index-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = event.target.elements.file.files[0];
    if (!file) { say("Choose an image first.", { error: true }); return; }
    const body = new FormData();
    body.append("file", file);
    body.append("overwrite", "true");
    say("Captioning…");
    showWarning("");
    try {
      const added = await postForm("/api/v1/images/upload", body);
      if (added.warning) showWarning(added.warning);
      results.replaceChildren(describe(added.image_info));
      say(`Added ${added.filename}: “${added.image_info.caption}”.`);
    } catch (error) {
      say(error.message, { error: true });
    }
  });
  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = event.target.elements.query.value.trim();
    if (!query) return;
    say("Searching…");
    try {
      const response = await fetch(`/api/v1/images/?query=${encodeURIComponent(query)}&limit=20`);
      if (!response.ok) throw new Error(await reasonOf(response));
      const hits = await response.json();
      results.replaceChildren(...hits.map(describe));
      const warned = hits.find((hit) => hit.warning);
      showWarning(warned ? warned.warning : "");
      say(hits.length ? `${hits.length} images found.` : "No image matches.");
    } catch (error) {
      say(error.message, { error: true });
    }
  });
}

setupTabs();
setupDrops();
setupForms();
setupSearch();
