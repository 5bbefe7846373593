// The clerk's page: drag and drop, forms that start a job, and the job's progress.
// Received text is only ever written with textContent, never as HTML.
"use strict";
(function () {
  const body = document.body;
  const words = JSON.parse(document.getElementById("words").textContent);
  const lang = body.dataset.lang === "en" ? "en" : "zh";
  const box = document.getElementById("progress");
  const bar = document.getElementById("bar");
  const label = document.getElementById("progress-text");

  function say(key, params) {
    const template = words[key] || key;
    return template.replace(/\{(\w+)\}/g, (whole, name) => (params && name in params ? String(params[name]) : whole));
  }

  function show(message, done, total) {
    box.hidden = false;
    if (total > 0) { bar.max = total; bar.value = done; } else { bar.removeAttribute("value"); }
    label.textContent = message;
  }

  function failed(message) {
    show(say("failed", { message: message || "" }), 0, 1);
    box.classList.add("failed");
  }

  function messageOf(answer) {
    const message = answer && answer.message;
    if (!message) return "";
    return typeof message === "string" ? message : message[lang] || "";
  }

  async function poll(id) {
    for (;;) {
      let job;
      try {
        const response = await fetch("/api/jobs/" + encodeURIComponent(id), { headers: { Accept: "application/json" } });
        job = await response.json();
        if (!response.ok) { failed(messageOf(job)); return; }
      } catch (error) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (job.state === "done" || job.state === "failed") {
        if (job.state === "done") show(say("done"), 1, 1);
        else failed(job.error ? job.error[lang] : "");
        location.assign("/?year=" + encodeURIComponent(job.year) + "&job=" + encodeURIComponent(job.id));
        return;
      }
      if (job.state === "queued" || !job.stage) show(say("queued"), 0, 0);
      else show(say("count", { stage: say(job.stage), done: job.done, total: job.total }), job.done, job.total);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
  }

  // Each office's findings open under its row.
  document.querySelectorAll("button.toggle").forEach((button) => {
    button.addEventListener("click", () => {
      const row = document.getElementById(button.getAttribute("aria-controls"));
      const open = row.hidden;
      row.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      button.title = say(open ? "hide" : "show");
    });
  });

  // Files dropped on the box go into its file input.
  const input = document.getElementById("files");
  const drop = document.getElementById("drop");
  const chosen = document.getElementById("chosen");
  const count = () => { chosen.textContent = input.files.length ? say("chosen", { n: input.files.length }) : ""; };
  input.addEventListener("change", count);
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (event) => {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      count();
    }
  });

  // A form that starts a job is sent in the background; the page follows the job, then reloads.
  document.querySelectorAll("form.job").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const buttons = form.querySelectorAll("button");
      buttons.forEach((button) => { button.disabled = true; });
      box.classList.remove("failed");
      show(say("sending"), 0, 0);
      try {
        const response = await fetch(form.action, {
          method: "POST", body: new FormData(form), credentials: "same-origin",
          headers: { Accept: "application/json", "X-CSRF-Token": body.dataset.csrf },
        });
        const answer = await response.json();
        if (!response.ok || !answer.job) throw new Error(messageOf(answer));
        poll(answer.job);
      } catch (error) {
        failed(error.message);
        buttons.forEach((button) => { button.disabled = false; });
      }
    });
  });

  if (body.dataset.job) poll(body.dataset.job);
})();
